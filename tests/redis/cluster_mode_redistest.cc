// Cluster mode end to end (label `redis`): two real `redpacket serve --mode cluster` processes on
// the Redis Cluster of the redis_cluster fixture. They share one --data-dir (one SQLite ledger,
// the stand-in for MariaDB until the Kafka/MariaDB issue), each with its own journal, and the hot
// path is Redis: a packet created on one server is grabbed on the other, a repeat on either gets
// 409 with the first amount, and a stampede split across both servers hands out every share once.
//
// Why one shared ledger and not one per server: packet ids come from the ledger, so two ledgers
// would both create packet 1 in the one Redis keyspace, and a server applying a grab of a packet
// its ledger never saw stops (the ledger refuses to credit money it cannot account for).
#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstdlib>
#include <filesystem>
#include <latch>
#include <set>
#include <string>
#include <vector>

#include "../e2e/harness.h"

namespace redpacket::e2e {
namespace {

constexpr int kShares = 100;
constexpr int kClients = 200;
constexpr std::int64_t kTotalCents = 10000;
constexpr std::int64_t kFirstGrabber = 5000;

std::string Env(const char* name, const std::string& fallback) {
  const char* value = std::getenv(name);  // NOLINT(concurrency-mt-unsafe): read before threads
  return value != nullptr && *value != '\0' ? value : fallback;
}

// REDPACKET_REDIS_NODES, else the fixture's first node (any one node is enough).
std::string RedisNodes() {
  const std::string nodes = Env("REDPACKET_REDIS_NODES", "");
  if (!nodes.empty()) return nodes;
  return "127.0.0.1:" + Env("REDPACKET_REDIS_BASE_PORT", "7001");
}

// A temp directory removed at the end, kept (and named) when the test failed.
class TempDir {
 public:
  TempDir() {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "redpacket-cluster-XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~TempDir() {
    if (::testing::Test::HasFailure()) {
      std::cerr << "temp dir kept: " << path_.string() << "\n";
      return;
    }
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

std::vector<std::string> ClusterFlags(const std::string& journal_name) {
  return {"--mode",         "cluster",    "--redis-nodes", RedisNodes(), "--max-count", "1000",
          "--journal-name", journal_name, "--threads",     "2",
          // Quick expiry, so the refund case below takes a second or two.
          "--min-expires-in-s", "1", "--sweep-interval-ms", "100"};
}

TEST(ClusterModeRedis, TwoServersShareEveryPacket) {
  TempDir shared;
  const std::filesystem::path data_dir = shared.path() / "data";
  ServerProcess a(ClusterFlags("a"), true, data_dir);
  ServerProcess b(ClusterFlags("b"), true, data_dir);
  a.Start();
  b.Start();
  ASSERT_NE(a.port(), b.port());
  ApiClient api_a(a);
  ApiClient api_b(b);
  // /readyz checks the Redis Cluster too in cluster mode.
  for (ApiClient* api : {&api_a, &api_b}) {
    const Reply ready = api->Get("/readyz");
    ASSERT_EQ(ready.status, 200) << Describe(ready);
    EXPECT_NE(ready.body.find(R"("store":"ok")"), std::string::npos) << ready.body;
  }
  const std::int64_t sender = api_a.CreateFundedUser("sender", 100000);

  // Created on A, grabbed on B; the same user again on A: 409 with the same amount.
  const std::string small = api_a.CreatePacket(
      sender, R"({"total_cents":1000,"count":5,"kind":"lucky","greeting":"cluster"})");
  const std::string small_grab = "/v1/packets/" + small + "/grab";
  // Packet ids come from the (new) ledger: a cluster kept from an earlier run already holds a
  // packet with this id, and Redis's copy wins (Add is idempotent by id).
  ASSERT_EQ(api_b.GetPacket(small).at("remaining_count").as_int64(), 5)
      << "the Redis Cluster holds packet " << small << " from an earlier run: purge it first "
      << "(scripts/redis-cluster down --purge; ctest's redis_cluster fixture does)";
  const Reply first = api_b.Post(small_grab, "", kFirstGrabber - 1);
  ASSERT_EQ(first.status, 200) << Describe(first);
  EXPECT_EQ(first.Int("seq"), 1);
  EXPECT_EQ(first.Int("remaining_count"), 4);
  const Reply repeat = api_a.Post(small_grab, "", kFirstGrabber - 1);
  ASSERT_EQ(repeat.status, 409) << Describe(repeat);
  EXPECT_EQ(repeat.Error(), "conflict");
  EXPECT_EQ(repeat.Int("amount_cents"), first.Int("amount_cents"));
  for (ApiClient* api : {&api_a, &api_b}) {
    const json::object details = api->GetPacket(small);
    EXPECT_EQ(details.at("remaining_count").as_int64(), 4);
    const auto grabs = GrabsByUser(details);
    ASSERT_EQ(grabs.size(), 1u);
    EXPECT_EQ(grabs.at(kFirstGrabber - 1).amount_cents, first.Int("amount_cents"));
  }

  // A 100-share packet created on B, stampeded by 200 users, every other one on each server.
  const std::string hot = api_b.CreatePacket(
      sender, R"({"total_cents":10000,"count":100,"kind":"lucky","greeting":"stampede"})");
  const std::string hot_grab = "/v1/packets/" + hot + "/grab";
  const std::vector<Reply> replies = SimultaneousGrabs(
      kClients, kFirstGrabber, hot, [&](int i) -> const ServerProcess& { return i % 2 == 0 ? a : b; });
  StampedeTally tally;
  ASSERT_NO_FATAL_FAILURE(TallyGrabs(replies, kFirstGrabber, hot, kShares, &tally));
  const auto& winners = tally.winners;
  ASSERT_NO_FATAL_FAILURE(ExpectEveryShareTakenOnce(tally, kClients, kShares, kTotalCents));
  // Both servers read the same packet: the acknowledged grabs, exactly.
  for (ApiClient* api : {&api_a, &api_b}) {
    const json::object details = api->GetPacket(hot);
    EXPECT_EQ(details.at("status").as_string(), "exhausted");
    EXPECT_EQ(details.at("remaining_count").as_int64(), 0);
    EXPECT_EQ(GrabsByUser(details), winners);
  }
  // A winner repeating on the other server gets its first amount.
  const auto& [winner, record] = *winners.begin();
  const int winner_index = static_cast<int>(winner - kFirstGrabber);
  const Reply again = (winner_index % 2 == 0 ? api_b : api_a).Post(hot_grab, "", winner);
  ASSERT_EQ(again.status, 409) << Describe(again);
  EXPECT_EQ(again.Int("amount_cents"), record.amount_cents);

  // Expiry in cluster mode: both servers' sweepers race to close the packet in Redis; the one
  // that closes it refunds what was left, once, into the shared ledger.
  const std::string expiring = api_a.CreatePacket(
      sender, R"({"total_cents":1000,"count":10,"kind":"lucky","expires_in_s":1})");
  std::int64_t expiring_grabbed = 0;
  for (std::int64_t user = 9000; user < 9003; ++user) {
    const Reply reply = api_b.Post("/v1/packets/" + expiring + "/grab", "", user);
    ASSERT_EQ(reply.status, 200) << Describe(reply);
    expiring_grabbed += reply.Int("amount_cents");
  }
  json::object details;
  ASSERT_NO_FATAL_FAILURE(WaitForPacketStatus(api_b, expiring, "refunded", &details));
  EXPECT_EQ(details.at("refund_cents").as_int64(), 1000 - expiring_grabbed);
  const std::int64_t expected_balance = 100000 - 1000 - kTotalCents - expiring_grabbed;
  ApiClient::Balance balance;
  EXPECT_TRUE(WaitUntil(
      [&] {
        balance = api_a.GetBalance(sender);
        return balance.pending_cents == 0 && balance.balance_cents == expected_balance;
      },
      milliseconds(15000), milliseconds(50)))
      << "balance " << balance.balance_cents << " pending " << balance.pending_cents
      << ", expected " << expected_balance;
  EXPECT_EQ(api_b.Post("/v1/packets/" + expiring + "/grab", "", 9100).status, 410);

  // A clean stop applies both journals to the shared ledger; it then audits clean.
  EXPECT_EQ(a.Stop(), 0);
  EXPECT_EQ(b.Stop(), 0);
  const CommandResult audit = RunRedpacket({"audit", "--data-dir", data_dir.string()});
  EXPECT_EQ(audit.exit_code, 0) << audit.output;
}

TEST(ClusterModeRedis, UnreachableRedisIsAClearStartupError) {
  TempDir temp;
  const CommandResult result = RunRedpacket(
      {"serve", "--mode", "cluster", "--redis-nodes", "127.0.0.1:1", "--dev", "--host",
       "127.0.0.1", "--port", "0", "--data-dir", (temp.path() / "data").string()},
      std::chrono::milliseconds(30000));
  EXPECT_EQ(result.exit_code, 1) << result.output;
  EXPECT_NE(result.output.find("cannot reach Redis at 127.0.0.1:1: "), std::string::npos)
      << result.output;
}

}  // namespace
}  // namespace redpacket::e2e
