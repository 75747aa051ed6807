// ReadRouter over two real SQLite ledgers standing in for a primary and its replica: reads go to
// the replica while it is within the lag bound, to the primary when it lags, is down, or fails
// a read; an id unknown to the replica is asked of the primary.
#include "ledger/routing/read_router.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>

#include "ledger/sqlite/sqlite_ledger.h"

namespace redpacket::ledger {
namespace {

namespace fs = std::filesystem;

class ReadRouterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "rp-router-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    directory_ = pattern;
    for (const char* name : {"primary.sqlite", "replica.sqlite"}) {
      auto ledger = OpenSqliteLedger(directory_ / name);
      ASSERT_TRUE(ledger->Migrate().ok());
    }
    // The primary has 500 for user 1; the replica has not caught up (100).
    ASSERT_TRUE(OpenSqliteLedger(directory_ / "primary.sqlite")->Deposit(1, 500, "").ok());
    ASSERT_TRUE(OpenSqliteLedger(directory_ / "replica.sqlite")->Deposit(1, 100, "").ok());
  }
  void TearDown() override { fs::remove_all(directory_); }

  std::unique_ptr<ReadRouter> Router(bool with_replica) {
    ReadRouterOptions options;
    options.max_lag = std::chrono::seconds(5);
    options.recheck_interval = std::chrono::milliseconds(0);  // ask the probe on every read
    return std::make_unique<ReadRouter>(
        OpenSqliteLedger(directory_ / "primary.sqlite"),
        with_replica ? OpenSqliteLedger(directory_ / "replica.sqlite") : nullptr,
        [this]() -> Result<std::optional<std::int64_t>> {
          if (replica_down_) return domain::MakeError(domain::ErrorCode::kUnavailable, "down");
          return lag_;
        },
        nullptr, options, stats_);
  }

  fs::path directory_;
  std::optional<std::int64_t> lag_ = 0;
  bool replica_down_ = false;
  std::shared_ptr<ReadRouterStats> stats_ = std::make_shared<ReadRouterStats>();
};

TEST_F(ReadRouterTest, ReadsTheReplicaWithinTheLagBoundAndThePrimaryOtherwise) {
  auto router = Router(true);
  EXPECT_EQ(*router->Balance(1), 100);  // replica
  EXPECT_EQ(stats_->reads_on_replica.load(), 1u);
  lag_ = 6;                             // too far behind
  EXPECT_EQ(*router->Balance(1), 500);  // primary
  EXPECT_EQ(stats_->replica_lag_seconds.load(), 6);
  lag_ = std::nullopt;  // not replicating
  EXPECT_EQ(*router->Balance(1), 500);
  replica_down_ = true;
  EXPECT_EQ(*router->Balance(1), 500);
  EXPECT_EQ(stats_->replica_lag_seconds.load(), -1);
  replica_down_ = false;
  lag_ = 1;
  EXPECT_EQ(*router->Balance(1), 100);  // back on the replica
  EXPECT_EQ(stats_->reads_on_primary.load(), 3u);
}

TEST_F(ReadRouterTest, WithoutAReplicaEverythingGoesToThePrimary) {
  auto router = Router(false);
  EXPECT_EQ(*router->Balance(1), 500);
  EXPECT_FALSE(stats_->replica_usable.load());
}

TEST_F(ReadRouterTest, AnIdUnknownToTheReplicaIsAskedOfThePrimary) {
  auto primary = OpenSqliteLedger(directory_ / "primary.sqlite");
  domain::PacketSpec spec{.sender_id = 1,
                          .kind = domain::PacketKind::kEqual,
                          .total_cents = 20,
                          .count = 2,
                          .greeting = "",
                          .expires_in_s = 60,
                          .receiver_id = {}};
  auto packet = primary->CreatePacket(spec, {10, 10}, domain::Clock::now(),
                                      domain::Clock::now() + std::chrono::minutes(1), "");
  ASSERT_TRUE(packet.ok());
  auto router = Router(true);
  auto found = router->GetPacket(packet->packet_id);
  ASSERT_TRUE(found.ok());
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ((*found)->spec.total_cents, 20);
  EXPECT_EQ(router->Deposit(1, 5, "").error().code, domain::ErrorCode::kInternal);  // not a writer
}

}  // namespace
}  // namespace redpacket::ledger
