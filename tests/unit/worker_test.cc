// The worker over a real SQLite ledger and an in-memory bus: duplicates credit once, a poison
// event is set aside with its reason while the rest of its batch is applied, transient ledger
// errors are retried, offsets are committed only after the ledger has the batch.
#include "worker/worker.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <deque>
#include <filesystem>

#include "ledger/sqlite/sqlite_ledger.h"

namespace redpacket::worker {
namespace {

namespace fs = std::filesystem;
using domain::ErrorCode;
using domain::LedgerEvent;

// An in-memory bus: what the test queues is polled in order; commits and dead letters recorded.
class FakeSource final : public bus::EventSource {
 public:
  void Queue(std::int32_t partition, std::uint64_t offset, std::optional<LedgerEvent> event) {
    bus::ConsumedMessage message{partition, offset, event, event ? "" : "not JSON", "garbage"};
    queue_.push_back(std::move(message));
  }
  domain::Result<std::vector<bus::ConsumedMessage>> Poll(std::size_t max,
                                                         std::chrono::milliseconds) override {
    std::vector<bus::ConsumedMessage> out;
    while (!queue_.empty() && out.size() < max) {
      out.push_back(queue_.front());
      queue_.pop_front();
    }
    return out;
  }
  domain::Status Commit(const bus::PartitionOffsets& applied) override {
    for (const auto& [partition, offset] : applied) {
      committed[partition] = std::max(committed[partition], offset);
    }
    return {};
  }
  domain::Status DeadLetter(const bus::ConsumedMessage& message,
                            const std::string& reason) override {
    dead.emplace_back(message.offset, reason);
    return {};
  }
  bus::PartitionOffsets committed;
  std::vector<std::pair<std::uint64_t, std::string>> dead;

 private:
  std::deque<bus::ConsumedMessage> queue_;
};

// Fails the first `failures` ApplyEvents with kUnavailable, then passes through.
class FlakyLedger final : public ledger::LedgerWriter {
 public:
  FlakyLedger(ledger::LedgerWriter& inner, int failures) : inner_(inner), failures_(failures) {}
  domain::Status Migrate() override { return inner_.Migrate(); }
  domain::Result<ledger::UserRecord> CreateUser(std::string_view name) override {
    return inner_.CreateUser(name);
  }
  domain::Result<domain::Cents> Deposit(domain::UserId user, domain::Cents amount,
                                        std::string_view id) override {
    return inner_.Deposit(user, amount, id);
  }
  domain::Result<ledger::PacketRecord> CreatePacket(const domain::PacketSpec& spec,
                                                    const std::vector<domain::Cents>& shares,
                                                    domain::TimePoint created,
                                                    domain::TimePoint expires,
                                                    std::string_view id) override {
    return inner_.CreatePacket(spec, shares, created, expires, id);
  }
  domain::Status ApplyEvents(std::span<const LedgerEvent> events,
                             const domain::PartitionOffsets& applied) override {
    if (failures_ > 0) {
      --failures_;
      return domain::MakeError(ErrorCode::kUnavailable, "database restarting");
    }
    return inner_.ApplyEvents(events, applied);
  }
  domain::Result<domain::PartitionOffsets> AppliedOffsets() override {
    return inner_.AppliedOffsets();
  }

 private:
  ledger::LedgerWriter& inner_;
  int failures_;
};

class WorkerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "rp-worker-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    directory_ = pattern;
    ledger_ = ledger::OpenSqliteLedger(directory_ / "ledger.sqlite");
    ASSERT_TRUE(ledger_->Migrate().ok());
    ASSERT_TRUE(ledger_->Deposit(1, 100, "").ok());
    domain::PacketSpec spec{.sender_id = 1,
                            .kind = domain::PacketKind::kLucky,
                            .total_cents = 100,
                            .count = 3,
                            .greeting = "hi",
                            .expires_in_s = 60,
                            .receiver_id = {}};
    auto packet = ledger_->CreatePacket(spec, {50, 30, 20}, domain::Clock::now(),
                                        domain::Clock::now() + std::chrono::seconds(60), "");
    ASSERT_TRUE(packet.ok());
    packet_id_ = packet->packet_id;
  }
  void TearDown() override {
    ledger_.reset();
    fs::remove_all(directory_);
  }
  LedgerEvent Grab(domain::UserId user, domain::Cents amount, std::int64_t seq) const {
    return LedgerEvent{LedgerEvent::Type::kGrab, packet_id_, user, amount, seq, 1};
  }
  domain::Cents BalanceOf(domain::UserId user) { return *ledger_->Balance(user); }

  fs::path directory_;
  std::unique_ptr<ledger::Ledger> ledger_;
  domain::PacketId packet_id_ = 0;
};

WorkerOptions FastOptions() {
  WorkerOptions options;
  options.retry_initial = std::chrono::milliseconds(1);
  options.retry_max = std::chrono::milliseconds(2);
  return options;
}

TEST_F(WorkerTest, DuplicateDeliveriesCreditOnce) {
  FakeSource source;
  source.Queue(0, 1, Grab(7, 50, 1));
  source.Queue(0, 2, Grab(7, 50, 1));  // redelivered in the same batch
  source.Queue(3, 9, Grab(8, 30, 2));
  Worker worker(source, *ledger_, FastOptions());
  worker.Drain();
  source.Queue(0, 1, Grab(7, 50, 1));  // and again in a later batch (a rebalance, a restart)
  worker.Drain();
  EXPECT_EQ(BalanceOf(7), 50);
  EXPECT_EQ(BalanceOf(8), 30);
  EXPECT_EQ(source.committed[0], 2u);
  EXPECT_EQ(source.committed[3], 9u);
  EXPECT_TRUE(source.dead.empty());
}

TEST_F(WorkerTest, APoisonEventIsSetAsideAndTheRestOfItsBatchApplied) {
  FakeSource source;
  source.Queue(0, 1, Grab(7, 50, 1));
  source.Queue(0, 2, Grab(8, 999, 2));  // not share 2's amount
  source.Queue(0, 3, std::nullopt);     // undecodable
  source.Queue(0, 4, LedgerEvent{LedgerEvent::Type::kGrab, 424242, 9, 5, 1, 1});  // unknown packet
  source.Queue(0, 5, Grab(10, 20, 3));
  std::vector<std::uint64_t> handled;
  Worker worker(source, *ledger_, FastOptions(), [&](std::span<const bus::ConsumedMessage> done) {
    for (const auto& message : done) handled.push_back(message.offset);
  });
  worker.Drain();
  EXPECT_EQ(BalanceOf(7), 50);
  EXPECT_EQ(BalanceOf(8), 0);
  EXPECT_EQ(BalanceOf(9), 0);
  EXPECT_EQ(BalanceOf(10), 20);
  ASSERT_EQ(source.dead.size(), 3u);
  EXPECT_EQ(source.dead[0].first, 3u);
  EXPECT_NE(source.dead[0].second.find("undecodable"), std::string::npos);
  EXPECT_EQ(source.dead[1].first, 2u);
  EXPECT_NE(source.dead[1].second.find("amount"), std::string::npos);
  EXPECT_EQ(source.dead[2].first, 4u);
  EXPECT_NE(source.dead[2].second.find("unknown packet"), std::string::npos);
  EXPECT_EQ(source.committed[0], 5u);  // the partition goes on
  EXPECT_EQ(worker.stats().dead_lettered, 3u);
  std::sort(handled.begin(), handled.end());
  EXPECT_EQ(handled, (std::vector<std::uint64_t>{1, 2, 3, 4, 5}));
}

TEST_F(WorkerTest, TransientLedgerErrorsAreRetriedAndNothingIsCommittedBefore) {
  FakeSource source;
  source.Queue(1, 40, Grab(7, 50, 1));
  FlakyLedger flaky(*ledger_, 3);
  Worker worker(source, flaky, FastOptions());
  EXPECT_EQ(worker.RunOnce(), 1u);
  EXPECT_EQ(BalanceOf(7), 50);
  EXPECT_EQ(worker.stats().retries, 3u);
  EXPECT_EQ(source.committed[1], 40u);
  EXPECT_TRUE(source.dead.empty());
}

TEST_F(WorkerTest, StopWhileTheLedgerIsDownCommitsNothing) {
  FakeSource source;
  source.Queue(0, 1, Grab(7, 50, 1));
  FlakyLedger flaky(*ledger_, 1'000'000);
  Worker worker(source, flaky, FastOptions());
  worker.Start();
  while (worker.stats().retries < 3) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  worker.Stop();
  EXPECT_TRUE(source.committed.empty());  // the bus delivers it again after a restart
  EXPECT_EQ(BalanceOf(7), 0);
}

}  // namespace
}  // namespace redpacket::worker
