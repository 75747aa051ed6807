// The end-to-end harness: child process management (fork/exec, readiness, SIGTERM/SIGKILL,
// restart), the audit command, and JSON request helpers.
#include "harness.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <latch>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <exception>
#include <fstream>
#include <iostream>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace redpacket::e2e {
namespace {

using Clock = std::chrono::steady_clock;

constexpr const char* kBinary = REDPACKET_BINARY;
constexpr milliseconds kReadyTimeout(20000);  // Scaled
constexpr milliseconds kPollInterval(20);

int ExitCodeOf(int wait_status) {
  if (WIFEXITED(wait_status)) return WEXITSTATUS(wait_status);
  if (WIFSIGNALED(wait_status)) return 128 + WTERMSIG(wait_status);
  return -1;
}

// argv for execv; the strings must outlive the call.
std::vector<char*> Argv(std::vector<std::string>& arguments) {
  std::vector<char*> argv;
  argv.reserve(arguments.size() + 1);
  for (auto& argument : arguments) argv.push_back(argument.data());
  argv.push_back(nullptr);
  return argv;
}

// In the child, between fork and exec: only async-signal-safe calls. Dies with the test process
// (no orphaned servers when a test crashes), keeps no descriptor of the parent beyond stdio.
[[noreturn]] void ExecChild(int output_fd, pid_t parent, char** argv) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent) _exit(127);
  const int null_fd = open("/dev/null", O_RDONLY);
  dup2(null_fd, STDIN_FILENO);
  dup2(output_fd, STDOUT_FILENO);
  dup2(output_fd, STDERR_FILENO);
  close_range(3, ~0U, 0);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);  // NOLINT(concurrency-mt-unsafe): one thread here
  execv(argv[0], argv);
  _exit(127);
}

std::string ReadFileFrom(const std::filesystem::path& path, std::size_t offset) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  in.seekg(static_cast<std::streamoff>(offset));
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string LastLines(const std::string& text, std::size_t lines) {
  std::size_t position = text.size();
  for (std::size_t seen = 0; position > 0 && seen <= lines; --position) {
    if (text[position - 1] == '\n') ++seen;
  }
  return text.substr(position);
}

}  // namespace

int Slowdown() {
#if defined(__SANITIZE_THREAD__)
  return 8;
#elif defined(__SANITIZE_ADDRESS__)
  return 3;
#else
  return 1;
#endif
}

std::string SanitizerReport(const std::string& text) {
  // What each sanitizer prints first: "ERROR: AddressSanitizer: ...", "ERROR: LeakSanitizer: ...",
  // "<file>:<line>:<column>: runtime error: ..." (UBSan), "WARNING: ThreadSanitizer: ...".
  static constexpr std::string_view kMarkers[] = {"ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                                                  ": runtime error: ", "ThreadSanitizer: ",
                                                  "SUMMARY: UndefinedBehaviorSanitizer"};
  std::size_t first = std::string::npos;
  for (std::string_view marker : kMarkers) first = std::min(first, text.find(marker));
  if (first == std::string::npos) return {};
  const std::size_t line_start = text.rfind('\n', first);
  const std::size_t begin = line_start == std::string::npos ? 0 : line_start + 1;
  std::size_t end = begin;
  for (int lines = 0; lines < 80 && end != std::string::npos; ++lines) {
    end = text.find('\n', end + 1);
  }
  return text.substr(begin, end == std::string::npos ? std::string::npos : end - begin);
}

CommandResult RunRedpacket(const std::vector<std::string>& arguments, milliseconds timeout) {
  std::vector<std::string> all{kBinary};
  all.insert(all.end(), arguments.begin(), arguments.end());
  std::vector<char*> argv = Argv(all);
  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) ExecChild(pipe_fds[1], parent, argv.data());
  close(pipe_fds[1]);

  CommandResult result;
  const auto deadline = Clock::now() + Scaled(timeout);
  char chunk[4096];
  while (Clock::now() < deadline) {
    pollfd entry{pipe_fds[0], POLLIN, 0};
    if (poll(&entry, 1, 100) <= 0) continue;
    const ssize_t n = read(pipe_fds[0], chunk, sizeof chunk);
    if (n <= 0) break;  // EOF: the command closed its output (it has exited)
    result.output.append(chunk, static_cast<std::size_t>(n));
  }
  close(pipe_fds[0]);
  int status = 0;
  if (Clock::now() >= deadline) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    throw std::runtime_error("redpacket " + (arguments.empty() ? "" : arguments[0]) +
                             " timed out:\n" + result.output);
  }
  waitpid(pid, &status, 0);
  result.exit_code = ExitCodeOf(status);
  const std::string report = SanitizerReport(result.output);
  if (!report.empty()) {
    ADD_FAILURE() << "redpacket " << (arguments.empty() ? "" : arguments[0])
                  << ": a sanitizer report:\n" << report;
  }
  return result;
}

ServerProcess::ServerProcess(std::vector<std::string> flags, bool dev)
    : flags_(std::move(flags)), dev_(dev) {
  std::string pattern = (std::filesystem::temp_directory_path() / "redpacket-e2e-XXXXXX").string();
  if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  temp_dir_ = pattern;
  data_dir_ = temp_dir_ / "data";
  log_file_ = temp_dir_ / "server.log";
}

ServerProcess::ServerProcess(std::vector<std::string> flags, bool dev,
                             std::filesystem::path data_dir)
    : ServerProcess(std::move(flags), dev) {
  data_dir_ = std::move(data_dir);
}

ServerProcess::~ServerProcess() {
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  const std::string report = SanitizerReport(Log());
  if (!report.empty()) {
    ADD_FAILURE() << "a sanitizer report in the server log " << log_file_.string() << ":\n"
                  << report;
  }
  // Unwinding from an exception: the test is failing, GoogleTest just does not know it yet.
  if (::testing::Test::HasFailure() || std::uncaught_exceptions() > 0) {
    std::cerr << "---- server log (" << log_file_.string() << "), last lines ----\n"
              << LastLines(Log(), 150)
              << "---- end of server log; temp dir kept: " << temp_dir_.string() << " ----\n";
    return;
  }
  std::error_code ignored;
  std::filesystem::remove_all(temp_dir_, ignored);
}

std::unique_ptr<ServerProcess> ServerProcess::Worker(std::vector<std::string> flags) {
  auto worker = std::make_unique<ServerProcess>(std::move(flags), false);
  worker->subcommand_ = "worker";
  worker->log_file_ = worker->temp_dir_ / "worker.log";
  return worker;
}

void ServerProcess::Start() {
  if (pid_ > 0) throw std::runtime_error("Start: the server is already running");
  std::vector<std::string> arguments{kBinary, subcommand_, "--host", "127.0.0.1", "--port", "0",
                                     "--log-level", "info"};
  if (subcommand_ == "serve") {
    arguments.push_back("--data-dir");
    arguments.push_back(data_dir_.string());
  }
  if (dev_) arguments.push_back("--dev");
  arguments.insert(arguments.end(), flags_.begin(), flags_.end());
  std::vector<char*> argv = Argv(arguments);

  const int log_fd = open(log_file_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) throw std::runtime_error("cannot open " + log_file_.string());
  std::string banner = "==== harness: starting";
  for (std::size_t i = 1; i < arguments.size(); ++i) banner += " " + arguments[i];
  banner += " ====\n";
  if (write(log_fd, banner.data(), banner.size()) < 0) {
    close(log_fd);
    throw std::runtime_error("cannot write " + log_file_.string());
  }
  const std::size_t log_offset = static_cast<std::size_t>(lseek(log_fd, 0, SEEK_END));

  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) {
    close(log_fd);
    throw std::runtime_error("fork failed");
  }
  if (pid == 0) ExecChild(log_fd, parent, argv.data());
  close(log_fd);
  pid_ = pid;
  port_ = 0;

  // The port comes from the "listening on" line (--port 0); ready once /readyz says 200.
  static const std::regex kListening(R"(listening on http://127\.0\.0\.1:(\d+))");
  std::unique_ptr<http::Client> client;
  const auto deadline = Clock::now() + Scaled(kReadyTimeout);
  while (Clock::now() < deadline) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      throw std::runtime_error("the server exited during start with code " +
                               std::to_string(ExitCodeOf(status)) + "; log:\n" +
                               LastLines(Log(), 50));
    }
    if (port_ == 0) {
      std::smatch match;
      const std::string text = ReadFileFrom(log_file_, log_offset);
      if (std::regex_search(text, match, kListening)) {
        port_ = static_cast<std::uint16_t>(std::stoi(match[1].str()));
        client = NewClient();
      }
    }
    if (client && client->Get("/readyz").status == 200) return;
    std::this_thread::sleep_for(kPollInterval);
  }
  throw std::runtime_error("the server was not ready within " +
                           std::to_string(Scaled(kReadyTimeout).count()) + " ms; log:\n" +
                           LastLines(Log(), 50));
}

void ServerProcess::SendTerminate() {
  if (pid_ <= 0) throw std::runtime_error("SendTerminate: the server is not running");
  kill(pid_, SIGTERM);
}

int ServerProcess::WaitForExit(milliseconds timeout) {
  if (pid_ <= 0) throw std::runtime_error("WaitForExit: the server is not running");
  timeout = Scaled(timeout);
  const auto deadline = Clock::now() + timeout;
  int status = 0;
  while (Clock::now() < deadline) {
    const pid_t done = waitpid(pid_, &status, WNOHANG);
    if (done == pid_) {
      pid_ = -1;
      return ExitCodeOf(status);
    }
    std::this_thread::sleep_for(milliseconds(5));
  }
  kill(pid_, SIGKILL);
  waitpid(pid_, &status, 0);
  pid_ = -1;
  throw std::runtime_error("the server did not exit within " + std::to_string(timeout.count()) +
                           " ms after SIGTERM (killed it)");
}

int ServerProcess::Stop() {
  SendTerminate();
  return WaitForExit();
}

void ServerProcess::Kill() {
  if (pid_ <= 0) throw std::runtime_error("Kill: the server is not running");
  kill(pid_, SIGKILL);
  waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

std::optional<int> ServerProcess::PollExit() {
  if (pid_ <= 0) return std::nullopt;
  int status = 0;
  if (waitpid(pid_, &status, WNOHANG) != pid_) return std::nullopt;
  pid_ = -1;
  return ExitCodeOf(status);
}

std::string ServerProcess::Log() const { return ReadFileFrom(log_file_, 0); }

std::unique_ptr<http::Client> ServerProcess::NewClient() const {
  if (port_ == 0) throw std::runtime_error("NewClient: the server has not started");
  return std::make_unique<http::Client>("127.0.0.1", port_);
}

CommandResult ServerProcess::Audit() const {
  return RunRedpacket({"audit", "--data-dir", data_dir_.string()});
}

// ---- replies and requests ----------------------------------------------------------------------

const json::value& Reply::at(std::string_view key) const {
  if (!json.is_object()) throw std::runtime_error("not a JSON object: " + body);
  const json::value* value = json.as_object().if_contains(key);
  if (value == nullptr) throw std::runtime_error("no field " + std::string(key) + " in " + body);
  return *value;
}

std::int64_t Reply::Int(std::string_view key) const {
  const json::value& value = at(key);
  if (!value.is_int64())
    throw std::runtime_error(std::string(key) + " is not an integer in " + body);
  return value.get_int64();
}

std::string Reply::String(std::string_view key) const {
  const json::value& value = at(key);
  if (!value.is_string())
    throw std::runtime_error(std::string(key) + " is not a string in " + body);
  return std::string(value.get_string());
}

std::string Reply::Error() const {
  if (!json.is_object()) return {};
  const json::value* value = json.as_object().if_contains("error");
  return value != nullptr && value->is_string() ? std::string(value->get_string()) : std::string();
}

std::string Describe(const Reply& reply) { return std::to_string(reply.status) + " " + reply.body; }

ApiClient::ApiClient(const ServerProcess& server) : client_(server.NewClient()) {}

ApiClient::ApiClient(std::string host, std::uint16_t port)
    : client_(std::make_unique<http::Client>(std::move(host), port)) {}

Reply ApiClient::Request(std::string_view method, std::string_view target, std::string_view body,
                         std::int64_t user, const Headers& headers) {
  Headers all = headers;
  if (user != 0) all["X-User-Id"] = std::to_string(user);
  http::ClientResponse response = client_->Request(method, target, body, all);
  Reply reply{response.status, std::move(response.body), nullptr};
  boost::system::error_code error;
  json::value parsed = json::parse(reply.body, error);
  if (!error) reply.json = std::move(parsed);
  return reply;
}

Reply ApiClient::Get(std::string_view target, std::int64_t user, const Headers& headers) {
  return Request("GET", target, {}, user, headers);
}

Reply ApiClient::Post(std::string_view target, std::string_view body, std::int64_t user,
                      const Headers& headers) {
  return Request("POST", target, body, user, headers);
}

namespace {
void Expect(const Reply& reply, int status, std::string_view what) {
  if (reply.status != status) {
    throw std::runtime_error(std::string(what) + ": expected " + std::to_string(status) + ", got " +
                             Describe(reply));
  }
}
}  // namespace

std::int64_t ApiClient::CreateUser(std::string_view name) {
  const Reply reply = Post("/v1/users", json::serialize(json::object{{"name", name}}));
  Expect(reply, 201, "POST /v1/users");
  return reply.Int("user_id");
}

void ApiClient::Deposit(std::int64_t user, std::int64_t amount_cents) {
  const Reply reply = Post("/v1/users/" + std::to_string(user) + "/deposit",
                           json::serialize(json::object{{"amount_cents", amount_cents}}));
  Expect(reply, 200, "deposit");
}

std::int64_t ApiClient::CreateFundedUser(std::string_view name, std::int64_t amount_cents) {
  const std::int64_t user = CreateUser(name);
  Deposit(user, amount_cents);
  return user;
}

std::string ApiClient::CreatePacket(std::int64_t sender, std::string_view body) {
  const Reply reply = Post("/v1/packets", body, sender);
  Expect(reply, 201, "POST /v1/packets");
  return reply.String("packet_id");
}

ApiClient::Balance ApiClient::GetBalance(std::int64_t user) {
  const Reply reply = Get("/v1/users/" + std::to_string(user) + "/balance", user);
  Expect(reply, 200, "GET balance");
  return {reply.Int("balance_cents"), reply.Int("pending_cents")};
}

json::object ApiClient::GetPacket(std::string_view packet_id, std::int64_t as_user) {
  const Reply reply = Get("/v1/packets/" + std::string(packet_id), as_user);
  Expect(reply, 200, "GET packet");
  return reply.json.as_object();
}

std::vector<Reply> SimultaneousGrabs(int clients, std::int64_t first_user, const std::string& packet_id,
                                     const std::function<const ServerProcess&(int)>& server_for) {
  const std::string path = "/v1/packets/" + packet_id + "/grab";
  std::vector<Reply> replies(static_cast<std::size_t>(clients));
  std::latch connected(clients);
  RunThreads(clients, [&](int i) {
    ApiClient client(server_for(i));
    client.Get("/healthz");  // connect first, so the grabs leave together
    connected.arrive_and_wait();
    replies[static_cast<std::size_t>(i)] = client.Post(path, "", first_user + i);
  });
  return replies;
}

void TallyGrabs(const std::vector<Reply>& replies, std::int64_t first_user, const std::string& packet_id,
                std::int64_t shares, StampedeTally* tally) {
  for (std::size_t i = 0; i < replies.size(); ++i) {
    const Reply& reply = replies[i];
    const std::int64_t user = first_user + static_cast<std::int64_t>(i);
    if (reply.status == 410) {
      EXPECT_EQ(reply.Error(), "gone") << reply.body;
      ++tally->gone;
      continue;
    }
    ASSERT_EQ(reply.status, 200) << "user " << user << ": " << Describe(reply);
    EXPECT_EQ(reply.String("packet_id"), packet_id);
    EXPECT_EQ(reply.Int("user_id"), user);
    const GrabRecord record{user, reply.Int("amount_cents"), reply.Int("seq")};
    EXPECT_GE(record.amount_cents, 1);
    EXPECT_EQ(reply.Int("remaining_count"), shares - record.seq) << reply.body;
    EXPECT_TRUE(tally->seqs.insert(record.seq).second) << "seq " << record.seq << " given twice";
    EXPECT_TRUE(tally->winners.emplace(user, record).second) << "user " << user << " twice";
    tally->sum += record.amount_cents;
  }
}

void ExpectEveryShareTakenOnce(const StampedeTally& tally, int clients, std::int64_t shares,
                               std::int64_t total_cents) {
  EXPECT_EQ(tally.winners.size(), static_cast<std::size_t>(shares));
  EXPECT_EQ(tally.gone, clients - shares);
  EXPECT_EQ(tally.sum, total_cents);
  ASSERT_EQ(tally.seqs.size(), static_cast<std::size_t>(shares));
  EXPECT_EQ(*tally.seqs.begin(), 1);
  EXPECT_EQ(*tally.seqs.rbegin(), shares);
}

void WaitForPacketStatus(ApiClient& api, const std::string& packet_id, std::string_view status,
                         json::object* details) {
  ASSERT_TRUE(WaitUntil(
      [&] {
        *details = api.GetPacket(packet_id);
        return details->at("status").as_string() == status;
      },
      Scaled(milliseconds(15000)), milliseconds(50)))
      << "not " << status << ": " << json::serialize(*details);
}

std::map<std::int64_t, GrabRecord> GrabsByUser(const json::object& packet) {
  std::map<std::int64_t, GrabRecord> grabs;
  for (const json::value& item : packet.at("grabs").as_array()) {
    const json::object& grab = item.as_object();
    GrabRecord record{grab.at("user_id").as_int64(), grab.at("amount_cents").as_int64(),
                      grab.at("seq").as_int64()};
    if (!grabs.emplace(record.user_id, record).second) {
      throw std::runtime_error("user " + std::to_string(record.user_id) +
                               " appears twice in the grabs");
    }
  }
  return grabs;
}

GrabStorm::GrabStorm(const ServerProcess& server, const std::string& packet_id, int threads,
                     std::atomic<std::int64_t>& next_user)
    : path_("/v1/packets/" + packet_id + "/grab"), next_user_(next_user) {
  running_.store(threads);
  for (int i = 0; i < threads; ++i) {
    threads_.emplace_back(&GrabStorm::Run, this, std::make_unique<ApiClient>(server));
  }
}

GrabStorm::~GrabStorm() {
  Stop();
  for (auto& thread : threads_) {
    if (thread.joinable()) thread.join();
  }
}

void GrabStorm::Run(std::unique_ptr<ApiClient> client) {
  // Bounded even if the server misbehaved and never said 410.
  constexpr int kMostRequests = 1'000'000;
  for (int i = 0; i < kMostRequests && !stop_.load(); ++i) {
    const std::int64_t user = next_user_.fetch_add(1);
    const Reply reply = client->Post(path_, "", user);
    std::lock_guard lock(mutex_);
    if (reply.status == 0) {
      // Refused or closed before the reply began is fine (the server is gone); a reply cut off in
      // the middle is not.
      if (reply.body.find("partial message") != std::string::npos) {
        result_.unexpected.push_back("user " + std::to_string(user) +
                                     ": a truncated reply: " + reply.body);
      }
      ++result_.transport_errors;
      break;
    }
    if (reply.status == 410 && reply.Error() == "gone") {
      ++result_.gone;
      break;
    }
    const json::object* body = reply.json.if_object();
    if (reply.status == 200 && body != nullptr && body->contains("amount_cents") &&
        body->contains("seq")) {
      result_.acknowledged.push_back({user, reply.Int("amount_cents"), reply.Int("seq")});
      acknowledged_count_.fetch_add(1);
      continue;
    }
    result_.unexpected.push_back("user " + std::to_string(user) + ": " + Describe(reply));
    break;
  }
  running_.fetch_sub(1);
}

bool GrabStorm::WaitForAcknowledged(std::size_t count, milliseconds timeout) const {
  return WaitUntil([&] { return acknowledged_count_.load() >= count || running_.load() == 0; },
                   timeout, milliseconds(1)) &&
         acknowledged_count_.load() >= count;
}

GrabStorm::Result GrabStorm::Join() {
  for (auto& thread : threads_) {
    if (thread.joinable()) thread.join();
  }
  std::lock_guard lock(mutex_);
  return result_;
}

bool WaitUntil(const std::function<bool()>& done, milliseconds timeout, milliseconds interval) {
  const auto deadline = Clock::now() + timeout;
  while (true) {
    if (done()) return true;
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(interval);
  }
}

void RunThreads(int n, const std::function<void(int)>& fn) {
  std::vector<std::thread> threads;
  threads.reserve(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) threads.emplace_back(fn, i);
  for (auto& thread : threads) thread.join();
}

}  // namespace redpacket::e2e
