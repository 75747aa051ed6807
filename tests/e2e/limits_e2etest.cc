// The server's own limits, against the real binary: no rate limit in --dev unless a flag asks for
// one (the command line's default, src/app/main.cc), slow clients trickling a request head (all
// held while the server keeps serving, then closed at the head deadline), the cap on open
// connections and the per-address cap (refused at once, counted in the metrics). The rate limit
// itself and the token secret list are decided in http::Api and tested in-process:
// tests/unit/api_access_test.cc.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <regex>

#include "harness.h"

namespace redpacket::e2e {
namespace {

using Clock = std::chrono::steady_clock;
constexpr std::string_view kHealthRequest = "GET /healthz HTTP/1.1\r\nHost: e2e\r\n\r\n";

// A connected loopback socket (blocking); -1 when the connect failed.
int Connect(std::uint16_t port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd >= 0 && connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0) return fd;
  if (fd >= 0) close(fd);
  return -1;
}

bool SendAll(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

// Sends GET /healthz and waits (2 s at most) for a 200: the server took the connection.
bool AnswersHealth(int fd) {
  if (!SendAll(fd, kHealthRequest)) return false;
  std::string received;
  const auto deadline = Clock::now() + milliseconds(2000);
  while (received.find("\r\n\r\n{\"status\":\"ok\"}") == std::string::npos &&
         Clock::now() < deadline) {
    pollfd entry{fd, POLLIN, 0};
    if (poll(&entry, 1, 100) <= 0) continue;
    char chunk[512];
    const ssize_t n = recv(fd, chunk, sizeof chunk, 0);
    if (n <= 0) return false;
    received.append(chunk, static_cast<std::size_t>(n));
  }
  return received.starts_with("HTTP/1.1 200");
}

// The server closed `fd` (EOF or reset) without sending anything, within `timeout`.
bool ClosedByServer(int fd, milliseconds timeout) {
  pollfd entry{fd, POLLIN, 0};
  if (poll(&entry, 1, static_cast<int>(timeout.count())) <= 0) return false;
  char byte;
  const ssize_t n = recv(fd, &byte, 1, MSG_DONTWAIT);
  return n == 0 || (n < 0 && errno == ECONNRESET);
}

// How many of `fds` the server has closed (readable at EOF or reset), without waiting.
int CountClosed(const std::vector<int>& fds) {
  std::vector<pollfd> entries;
  for (int fd : fds) entries.push_back({fd, POLLIN, 0});
  if (poll(entries.data(), entries.size(), 0) <= 0) return 0;
  int closed = 0;
  for (const pollfd& entry : entries) {
    if ((entry.revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
    char byte;
    const ssize_t n = recv(entry.fd, &byte, 1, MSG_DONTWAIT | MSG_PEEK);
    if (n == 0 || (n < 0 && errno != EAGAIN)) ++closed;
  }
  return closed;
}

// The value of the series `series` (name and labels exactly as exported) in /metrics; -1 if absent.
double Metric(const ServerProcess& server, const std::string& series) {
  auto client = server.NewClient();
  const std::string text = client->Get("/metrics").body;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    if (line.starts_with(series + " ")) return std::stod(line.substr(series.size() + 1));
  }
  return -1;
}

std::int64_t RssKiB(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(status, line);) {
    if (line.starts_with("VmRSS:")) return std::stoll(line.substr(6));
  }
  return -1;
}

// Thousands of sockets: lift this process's open-file limit to its hard maximum (the server,
// started after, inherits it and lifts its own too).
void RaiseFileLimit(rlim_t needed) {
  rlimit limit{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &limit), 0);
  limit.rlim_cur = limit.rlim_max;
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &limit), 0);
  if (limit.rlim_cur < needed)
    GTEST_SKIP() << "the open-file limit " << limit.rlim_cur << " is below " << needed;
}

struct Sockets {
  std::vector<int> fds;
  ~Sockets() {
    for (int fd : fds) close(fd);
  }
};

// Opens `count` connections, each verified to be served (the server may still count the
// harness's closed readiness probe for a moment: a refused one is retried, 40 times at most).
void OpenServed(const ServerProcess& server, int count, Sockets* sockets) {
  for (int i = 0; i < count; ++i) {
    bool served = false;
    for (int attempt = 0; attempt < 40 && !served; ++attempt) {
      const int fd = Connect(server.port());
      ASSERT_GE(fd, 0);
      served = AnswersHealth(fd);
      if (served)
        sockets->fds.push_back(fd);
      else {
        close(fd);
        std::this_thread::sleep_for(milliseconds(50));
      }
    }
    ASSERT_TRUE(served) << "connection " << i << " was never served";
  }
}

TEST(LimitsE2E, DevModeHasNoRateLimitUnlessAskedFor) {
  ServerProcess server;  // --dev, no rate flags
  server.Start();
  ApiClient api(server);
  const std::int64_t sender = api.CreateFundedUser("sender", 10000);
  const std::string packet =
      api.CreatePacket(sender, R"({"total_cents":1000,"count":10,"kind":"equal"})");
  for (int i = 0; i < 200; ++i) ASSERT_EQ(api.Get("/v1/packets/" + packet, 7).status, 200) << i;
}

TEST(LimitsE2E, SlowHeadsAreHeldWhileTheServerServesThenClosedAtTheHeadDeadline) {
  constexpr int kSlow = 4000;
  constexpr milliseconds kHeadDeadline(6000);
  ASSERT_NO_FATAL_FAILURE(RaiseFileLimit(2 * kSlow + 200));
  ServerProcess server(
      {"--threads", "2", "--header-timeout-ms", std::to_string(kHeadDeadline.count())});
  server.Start();
  const std::int64_t rss_before = RssKiB(server.pid());

  // Each sends half a request line, then one more byte a second: never a whole head.
  Sockets slow;
  const auto start = Clock::now();
  for (int i = 0; i < kSlow; ++i) {
    const int fd = Connect(server.port());
    ASSERT_GE(fd, 0) << "connect " << i;
    slow.fds.push_back(fd);
    ASSERT_TRUE(SendAll(fd, "GET /healthz?pad=")) << i;
  }
  const auto connected = Clock::now();
  ApiClient api(server);
  int health_ok = 0, health_checks = 0;
  for (int second = 1; second <= 5; ++second) {
    std::this_thread::sleep_until(start + std::chrono::seconds(second));
    for (int fd : slow.fds) send(fd, "a", 1, MSG_NOSIGNAL | MSG_DONTWAIT);
    ++health_checks;
    if (api.Get("/healthz").status == 200) ++health_ok;
  }
  // 5 s in (before the first head's deadline at 6 s): all held, and the server kept serving.
  EXPECT_EQ(CountClosed(slow.fds), 0);
  EXPECT_EQ(health_ok, health_checks);
  EXPECT_GE(Metric(server, "redpacket_http_open_connections"), kSlow);
  const std::int64_t rss_held = RssKiB(server.pid());
  std::printf(
      "[ limits ] %d slow connections held after 5 s; connecting took %lld ms; server RSS %lld KiB "
      "before, %lld KiB with them held; /healthz %d/%d\n",
      kSlow,
      static_cast<long long>(std::chrono::duration_cast<milliseconds>(connected - start).count()),
      static_cast<long long>(rss_before), static_cast<long long>(rss_held), health_ok,
      health_checks);
  RecordProperty("rss_kib_with_slow_connections", std::to_string(rss_held));

  // Past the deadline (counted from each head's first bytes) every one is closed, though each
  // still trickles: the idle timeout alone would never fire.
  const auto all_due = connected + kHeadDeadline + milliseconds(2000);
  int closed = 0;
  for (int second = 6; Clock::now() < all_due && closed < kSlow; ++second) {
    std::this_thread::sleep_until(std::min(all_due, start + std::chrono::seconds(second)));
    for (int fd : slow.fds) send(fd, "a", 1, MSG_NOSIGNAL | MSG_DONTWAIT);
    closed = CountClosed(slow.fds);
  }
  const auto closed_after = std::chrono::duration_cast<milliseconds>(Clock::now() - start).count();
  EXPECT_EQ(closed, kSlow) << "closed by " << closed_after << " ms";
  std::printf("[ limits ] %d of %d closed by %lld ms (head deadline %lld ms)\n", closed, kSlow,
              static_cast<long long>(closed_after), static_cast<long long>(kHeadDeadline.count()));
  EXPECT_GE(Metric(server, "redpacket_http_header_timeouts_total"), kSlow);
  EXPECT_EQ(api.Get("/healthz").status, 200);
}

TEST(LimitsE2E, ConnectionsBeyondMaxConnectionsAreClosedAtOnceAndCounted) {
  ServerProcess server({"--max-connections", "50"});
  server.Start();
  Sockets held;
  ASSERT_NO_FATAL_FAILURE(OpenServed(server, 50, &held));
  const int extra =
      Connect(server.port());  // the kernel completes the handshake; the server closes
  ASSERT_GE(extra, 0);
  EXPECT_TRUE(ClosedByServer(extra, milliseconds(3000)));
  close(extra);
  EXPECT_TRUE(AnswersHealth(held.fds.front())) << "the held connections are still served";
  // Free one place for the scrape.
  close(held.fds.back());
  held.fds.pop_back();
  double rejected = -1;
  EXPECT_TRUE(WaitUntil(
      [&] {
        rejected =
            Metric(server, R"(redpacket_connections_rejected_total{reason="max_connections"})");
        return rejected >= 1;
      },
      milliseconds(5000), milliseconds(100)));
  EXPECT_GE(rejected, 1);
  EXPECT_NE(server.Log().find("refusing connections"), std::string::npos);
}

TEST(LimitsE2E, ConnectionsBeyondThePerAddressCapAreClosedAtOnceAndCounted) {
  ServerProcess server({"--max-connections-per-ip", "5"});
  server.Start();
  Sockets held;
  ASSERT_NO_FATAL_FAILURE(OpenServed(server, 5, &held));
  const int extra = Connect(server.port());
  ASSERT_GE(extra, 0);
  EXPECT_TRUE(ClosedByServer(extra, milliseconds(3000)));
  close(extra);
  close(held.fds.back());
  held.fds.pop_back();
  double rejected = -1;
  EXPECT_TRUE(WaitUntil(
      [&] {
        rejected = Metric(
            server, R"(redpacket_connections_rejected_total{reason="max_connections_per_ip"})");
        return rejected >= 1;
      },
      milliseconds(5000), milliseconds(100)));
  EXPECT_GE(rejected, 1);
}

}  // namespace
}  // namespace redpacket::e2e
