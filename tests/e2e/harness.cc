// The end-to-end harness, its processes: child process management (fork/exec, readiness,
// SIGTERM/SIGKILL, restart), the audit command, and the sanitizer reports of their output. The
// requests and the grab helpers are in harness_client.cc.
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

}  // namespace redpacket::e2e
