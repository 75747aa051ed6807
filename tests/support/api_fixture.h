// The API in-process, as `redpacket serve --dev` wires it in embedded mode (the embedded backend:
// journal + SQLite; the memory store; the service; http::Api), with no socket and no process: a
// manual clock (nothing here waits for real time: Advance() it, then SweepNow()), a seeded RNG
// for the shares, and Call(method, path, body). Fast, and run under ASan/UBSan and TSan like any
// unit test. As in Dragonfly's BaseFamilyTest: one fixture, one test file per resource.
// Call() blocks until the API answers and may be called from many threads at once (http::Api is
// thread-safe, as on the server's I/O threads); the rest (setup, SweepNow, Restart, ExpectAuditOk)
// from the test's thread.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <boost/json.hpp>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "domain/clock.h"
#include "domain/packet.h"
#include "domain/random.h"

namespace redpacket {
namespace http {
class Api;
}

namespace testing_support {

class EmbeddedInProcess;

struct ApiReply {
  int status = 0;
  std::string body;
  boost::json::value json;  // null when the body is not JSON
  std::string headers;      // the response's extra header lines (Retry-After is not among them)
  int retry_after_s = 0;
  std::string allow;         // the Allow header of a 405
  std::string content_type;  // the Content-Type the API chose

  std::int64_t Int(std::string_view key) const;  // throws when absent
  std::string String(std::string_view key) const;
  std::string Error() const;  // the "error" code, "" when none
};
std::string Describe(const ApiReply& reply);  // "<status> <body>", for assertion messages

struct ApiFixtureOptions {
  std::uint64_t seed = 1;                                               // the shares' RNG
  domain::TimePoint start = domain::FromUnixMillis(1'900'000'000'000);  // 2030: far from now
  domain::Limits limits;  // as `serve`'s defaults: max_count 100, 200.00, expiry 60 s..1 day
  // The access options of `serve`, as its flags name them. dev: X-User-Id names the caller, the
  // admin endpoints are open, GET /grab is served. token_secret: "new,old" (sign with the first,
  // accept any); empty: --dev's development secret. The rate limit (per caller, 0: off) counts
  // real time (steady_clock), not the manual clock.
  bool dev = true;
  std::string token_secret;
  std::int64_t rate_limit_per_user = 0;
  std::int64_t rate_limit_burst = 40;
};

class ApiFixture : public ::testing::Test {
 protected:
  using Headers = std::map<std::string, std::string>;

  ApiFixture();
  explicit ApiFixture(ApiFixtureOptions options);
  ~ApiFixture() override;

  void SetUp() override;
  void TearDown() override;

  // One request, answered by the API as a --dev server would (X-User-Id names the caller; `user`
  // 0 sends none). Blocks until the response.
  ApiReply Call(std::string_view method, std::string_view target, std::string_view body = "",
                std::int64_t user = 0, const Headers& headers = {});
  // The same request from `threads` callers at once; their replies, in the callers' order.
  std::vector<ApiReply> CallConcurrently(int threads, std::string_view method,
                                         std::string_view target, std::string_view body,
                                         std::int64_t user = 0);

  // The common steps of a test's setup; each fails the test unless the API answers as it says.
  std::int64_t CreateUser(std::string_view name);
  std::int64_t CreateFundedUser(std::string_view name, std::int64_t amount_cents);
  std::string CreatePacket(std::int64_t sender, std::string_view body);
  std::int64_t Balance(std::int64_t user);  // balance_cents + pending_cents

  // A bearer token for `user`, signed with the first token secret, expiring `ttl` after the
  // manual clock's now.
  std::string Token(std::int64_t user, bool admin = false,
                    std::chrono::seconds ttl = std::chrono::hours(1)) const;
  static Headers Bearer(const std::string& token) { return {{"Authorization", "Bearer " + token}}; }
  static std::string DepositPath(std::int64_t user) {
    return "/v1/users/" + std::to_string(user) + "/deposit";
  }
  static std::string GrabPath(const std::string& packet) {
    return "/v1/packets/" + packet + "/grab";
  }
  // The packet's details (as user 1) once its status is `status`, or the last answer after
  // `limit` (expired becomes refunded once the ledger has applied the refund: a wait for the
  // applier, not for the clock).
  ApiReply DetailsOnce(const std::string& packet, const std::string& status,
                       std::chrono::milliseconds limit);

  domain::ManualTimeSource& clock() { return clock_; }
  // Runs the sweeper once (expiry, refunds, eviction) and waits until what it appended is in
  // the journal.
  void SweepNow();
  // Stops everything (as SIGTERM does) and starts again on the same data dir.
  void Restart();
  // Stops everything, audits the data dir as `redpacket audit` does (each violation fails the
  // test), and starts again.
  void ExpectAuditOk();

  // For a test that lays data down while nothing runs: Stop(), write into data_dir(), Start().
  void Start();
  void Stop();
  const std::filesystem::path& data_dir() const { return root_; }

 private:
  ApiFixtureOptions options_;
  std::filesystem::path root_;
  domain::ManualTimeSource clock_;
  domain::SeededRandom random_;
  std::vector<std::string> token_secrets_;  // as `serve` resolves them, newest first
  std::atomic<int> next_deposit_{0};        // the request ids of CreateFundedUser's deposits
  std::unique_ptr<EmbeddedInProcess> embedded_;
  std::unique_ptr<http::Api> api_;  // after what it uses: it goes first
};

}  // namespace testing_support
}  // namespace redpacket
