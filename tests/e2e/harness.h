// The end-to-end harness: runs the real `redpacket serve` as a child process (own temp data dir,
// a free port, stderr to a log file printed when a test fails), talks HTTP to it, stops it with
// SIGTERM or SIGKILL, restarts it on the same data dir, and runs `redpacket audit`.
// Setup failures throw std::runtime_error (GoogleTest reports them as test failures).
// Under the sanitizers (the debug and tsan presets) the server is that build's sanitized binary,
// it inherits ASAN_OPTIONS/UBSAN_OPTIONS/TSAN_OPTIONS from ctest, and a sanitizer report in its
// log or in a command's output fails the test (even when the server is SIGKILLed afterwards).
#pragma once

#include <sys/types.h>

#include <atomic>
#include <boost/json.hpp>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "http/client/client.h"

namespace redpacket::e2e {

namespace json = boost::json;
using Headers = std::map<std::string, std::string>;
using std::chrono::milliseconds;

// How many times slower than the release build this build runs the server: 1, 3 under ASan and
// UBSan, 8 under TSan. The harness's own waits are multiplied by it; a test's generous bounds
// (never the ones it asserts as a property, like a deadline that must pass) can use Scaled().
int Slowdown();
inline milliseconds Scaled(milliseconds bound) { return bound * Slowdown(); }

// The first sanitizer report in `text` (AddressSanitizer, LeakSanitizer, UndefinedBehaviorSanitizer
// "runtime error", ThreadSanitizer) with the lines after it, or "" when there is none.
std::string SanitizerReport(const std::string& text);

// The output and exit code of a finished `redpacket <subcommand>`.
struct CommandResult {
  int exit_code = -1;  // 128 + signal when killed by a signal
  std::string output;  // stdout and stderr, interleaved
};

// Runs the redpacket binary with `arguments` and waits (at most Scaled(timeout)). Blocks. A
// sanitizer report in its output is a test failure.
CommandResult RunRedpacket(const std::vector<std::string>& arguments,
                           milliseconds timeout = milliseconds(60000));

// One server process and its temp dir. Not thread-safe: drive it from the test's thread.
class ServerProcess {
 public:
  // `flags` are added to `serve --host 127.0.0.1 --port 0 --data-dir <temp>/data --log-level info`;
  // `dev` adds --dev.
  explicit ServerProcess(std::vector<std::string> flags = {}, bool dev = true);
  // The same, on `data_dir` instead of <temp>/data (servers sharing a ledger; the caller owns
  // the directory).
  ServerProcess(std::vector<std::string> flags, bool dev, std::filesystem::path data_dir);
  // `redpacket worker --host 127.0.0.1 --port 0 --log-level info <flags>` (cluster mode): its
  // port serves /readyz and /metrics.
  static std::unique_ptr<ServerProcess> Worker(std::vector<std::string> flags);
  // SIGKILLs a server still running. A sanitizer report in the log fails the test. Removes the
  // temp dir, or keeps it and prints the log's tail when the test has failed.
  ~ServerProcess();
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  // Starts (or restarts, on the same data dir) and waits until GET /readyz answers 200 (20 s,
  // Scaled).
  void Start();
  // SIGTERM, then waits for the exit (30 s, Scaled; SIGKILL after that). Returns the exit code.
  int Stop();
  // Sends SIGTERM and returns at once; WaitForExit() collects the exit code.
  void SendTerminate();
  int WaitForExit(milliseconds timeout = milliseconds(30000));  // Scaled
  // SIGKILL and reap: the crash case.
  void Kill();
  // The exit code if the process has ended on its own (a crash: 128 + signal), nullopt while it
  // runs.
  std::optional<int> PollExit();

  bool running() const { return pid_ > 0; }
  std::uint16_t port() const { return port_; }
  pid_t pid() const { return pid_; }  // -1 when not running
  const std::filesystem::path& data_dir() const { return data_dir_; }
  const std::filesystem::path& log_file() const { return log_file_; }
  std::string Log() const;

  // A new keep-alive client of this server (one per thread).
  std::unique_ptr<http::Client> NewClient() const;
  // `redpacket audit --data-dir <data dir>` (run it while the server is stopped).
  CommandResult Audit() const;

 private:
  std::string subcommand_ = "serve";
  std::vector<std::string> flags_;
  bool dev_;
  std::filesystem::path temp_dir_;
  std::filesystem::path data_dir_;
  std::filesystem::path log_file_;
  pid_t pid_ = -1;
  std::uint16_t port_ = 0;
};

// A reply with its body parsed as JSON when it is JSON (null otherwise).
struct Reply {
  int status = 0;
  std::string body;
  json::value json;

  // The body's field `key` (throws when the body is not an object or lacks it).
  const json::value& at(std::string_view key) const;
  std::int64_t Int(std::string_view key) const;
  std::string String(std::string_view key) const;
  // The "error" code of an error body, "" when there is none.
  std::string Error() const;
};

// printable form for assertion messages: "<status> <body>"
std::string Describe(const Reply& reply);

// Requests against one server through one keep-alive connection. In --dev mode `user` (when not
// 0) becomes the X-User-Id header. One per thread.
class ApiClient {
 public:
  explicit ApiClient(const ServerProcess& server);
  ApiClient(std::string host, std::uint16_t port);

  Reply Get(std::string_view target, std::int64_t user = 0, const Headers& headers = {});
  Reply Post(std::string_view target, std::string_view body, std::int64_t user = 0,
             const Headers& headers = {});
  Reply Request(std::string_view method, std::string_view target, std::string_view body,
                std::int64_t user, const Headers& headers);

  // The common steps of a test's setup; each throws unless the server answers as the API says.
  std::int64_t CreateUser(std::string_view name);
  void Deposit(std::int64_t user, std::int64_t amount_cents);
  std::int64_t CreateFundedUser(std::string_view name, std::int64_t amount_cents);
  // POST /v1/packets as `sender` with `body`; returns the packet id (a string in the JSON).
  std::string CreatePacket(std::int64_t sender, std::string_view body);
  // balance_cents + pending_cents, and the two apart.
  struct Balance {
    std::int64_t balance_cents = 0;
    std::int64_t pending_cents = 0;
    std::int64_t total() const { return balance_cents + pending_cents; }
  };
  Balance GetBalance(std::int64_t user);
  json::object GetPacket(std::string_view packet_id, std::int64_t as_user = 1);

 private:
  std::unique_ptr<http::Client> client_;
};

// One grab as a client saw it (a 200) or as GET /v1/packets/{id} lists it.
struct GrabRecord {
  std::int64_t user_id = 0;
  std::int64_t amount_cents = 0;
  std::int64_t seq = 0;
  bool operator==(const GrabRecord&) const = default;
};

// The "grabs" of a packet's details, by user id (throws if a user appears twice).
std::map<std::int64_t, GrabRecord> GrabsByUser(const json::object& packet);

// Threads grabbing one packet, each request as a new user (ids from `next_user`), until the
// packet is gone, the server stops answering, or Stop(). Every 200 is recorded. Joins on
// destruction.
class GrabStorm {
 public:
  struct Result {
    std::vector<GrabRecord> acknowledged;  // every 200, parsed
    std::vector<std::string>
        unexpected;            // any reply but a complete 200, a 410 or a transport error
    int gone = 0;              // 410s
    int transport_errors = 0;  // status 0: the server closed or refused
  };

  GrabStorm(const ServerProcess& server, const std::string& packet_id, int threads,
            std::atomic<std::int64_t>& next_user);
  ~GrabStorm();
  GrabStorm(const GrabStorm&) = delete;
  GrabStorm& operator=(const GrabStorm&) = delete;

  std::size_t acknowledged_count() const { return acknowledged_count_.load(); }
  // Polls until `count` grabs were acknowledged (false after `timeout` or when every thread ended).
  bool WaitForAcknowledged(std::size_t count, milliseconds timeout) const;
  void Stop() { stop_.store(true); }
  // Waits for every thread to end (they end on their own once the server is gone or the packet
  // empty).
  Result Join();

 private:
  void Run(std::unique_ptr<ApiClient> client);

  std::string path_;
  std::atomic<std::int64_t>& next_user_;
  std::atomic<bool> stop_{false};
  std::atomic<std::size_t> acknowledged_count_{0};
  std::atomic<int> running_{0};
  std::mutex mutex_;
  Result result_;
  std::vector<std::thread> threads_;
};

// Polls `done` every `interval` until it returns true or `timeout` passes; returns its last value.
bool WaitUntil(const std::function<bool()>& done, milliseconds timeout,
               milliseconds interval = milliseconds(20));

// Runs fn(0..n-1) on n threads and joins them.
void RunThreads(int n, const std::function<void(int)>& fn);

// A crowd on one packet: `clients` threads, client i grabbing as user first_user + i on the
// server `server_for(i)` names; all connect first, then every grab leaves at once.
std::vector<Reply> SimultaneousGrabs(int clients, std::int64_t first_user,
                                     const std::string& packet_id,
                                     const std::function<const ServerProcess&(int)>& server_for);

// What a stampede's replies add up to.
struct StampedeTally {
  std::map<std::int64_t, GrabRecord> winners;  // by user
  std::set<std::int64_t> seqs;
  std::int64_t sum = 0;
  int gone = 0;
};
// Checks each reply of SimultaneousGrabs: a 410 "gone", or a 200 for that user and packet with an
// amount >= 1, the right remaining_count, a seq and a user never seen before (gtest failures
// otherwise; a reply that is neither is fatal). Use under ASSERT_NO_FATAL_FAILURE.
void TallyGrabs(const std::vector<Reply>& replies, std::int64_t first_user,
                const std::string& packet_id, std::int64_t shares, StampedeTally* tally);
// The crowd emptied the packet exactly: `shares` winners summing to `total_cents`, every other
// client told "gone", seqs 1..shares each once. Use under ASSERT_NO_FATAL_FAILURE.
void ExpectEveryShareTakenOnce(const StampedeTally& tally, int clients, std::int64_t shares,
                               std::int64_t total_cents);

// Polls GET /v1/packets/{id} (50 ms apart, Scaled(15 s) at most) until its status is `status`;
// `details` holds the last answer. Fatal on timeout: use under ASSERT_NO_FATAL_FAILURE.
void WaitForPacketStatus(ApiClient& api, const std::string& packet_id, std::string_view status,
                         json::object* details);

}  // namespace redpacket::e2e
