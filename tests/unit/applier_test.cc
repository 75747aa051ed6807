// The applier over a real SQLite ledger and an in-memory bus: duplicates credit once; a poison
// event is set aside in the ledger, whole and with its reason, in the transaction that moves the
// position past it, while the rest of its batch is applied; a ledger that cannot write (any
// failure but a refusal) stalls the applier, which retries and commits nothing meanwhile; a
// commit the consumer group will never take is dropped and polling goes on; balance reads keep
// answering while the ledger cannot write and after.
#include "applier/applier.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <atomic>
#include <deque>
#include <filesystem>
#include <functional>
#include <thread>

#include "bus/codec/event_codec.h"
#include "domain/clock.h"
#include "ledger/sqlite/sqlite_ledger.h"
#include "service/pending_credits.h"

namespace redpacket::applier {
namespace {

namespace fs = std::filesystem;
using domain::ErrorCode;
using domain::LedgerEvent;

// An in-memory bus: what the test queues is polled in order; commits and dead letters recorded.
class FakeSource final : public bus::EventSource {
 public:
  void Queue(std::int32_t partition, std::uint64_t offset, std::optional<LedgerEvent> event) {
    // The journal hands over events (no bytes); what Kafka could not decode keeps its bytes.
    bus::ConsumedMessage message{partition, offset, event, event ? "" : "not JSON",
                                 event ? "" : "garbage"};
    std::lock_guard lock(mutex_);
    queue_.push_back(std::move(message));
  }
  domain::Result<std::vector<bus::ConsumedMessage>> Poll(std::size_t max,
                                                         std::chrono::milliseconds) override {
    std::lock_guard lock(mutex_);
    ++polls;
    std::vector<bus::ConsumedMessage> out;
    while (!queue_.empty() && out.size() < max) {
      out.push_back(queue_.front());
      queue_.pop_front();
    }
    return out;
  }
  domain::Status Commit(const bus::PartitionOffsets& applied) override {
    std::lock_guard lock(mutex_);
    if (commit_error) {
      ++commit_attempts;
      return *commit_error;
    }
    for (const auto& [partition, offset] : applied) {
      committed[partition] = std::max(committed[partition], offset);
    }
    return {};
  }
  domain::Status DeadLetter(const bus::ConsumedMessage& message,
                            const std::string& reason) override {
    std::lock_guard lock(mutex_);
    dead.emplace_back(message.offset, reason);
    return domain::MakeError(ErrorCode::kUnavailable, "the copy is best effort");
  }
  std::uint64_t Committed(std::int32_t partition) {
    std::lock_guard lock(mutex_);
    return committed.contains(partition) ? committed.at(partition) : 0;
  }
  std::mutex mutex_;
  bus::PartitionOffsets committed;
  std::vector<std::pair<std::uint64_t, std::string>> dead;
  std::optional<domain::Error> commit_error;
  int commit_attempts = 0;
  int polls = 0;

 private:
  std::deque<bus::ConsumedMessage> queue_;
};

// Passes through to a real ledger, except that while `failing` holds an error, every write
// (ApplyEvents, SetAside) fails with it and writes nothing: a full disk, a lost server...
class FailingLedger final : public ledger::LedgerWriter {
 public:
  explicit FailingLedger(ledger::LedgerWriter& inner) : inner_(inner) {}
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
    if (!set_aside_only_) {
      if (auto error = Fail()) return *error;
    }
    return inner_.ApplyEvents(events, applied);
  }
  domain::Status SetAside(const ledger::SetAsideRecord& record,
                          const domain::PartitionOffsets& applied) override {
    if (auto error = Fail()) return *error;
    return inner_.SetAside(record, applied);
  }
  // Only SetAside fails (ApplyEvents passes through); `on_failure` runs at each failure.
  void FailSetAsideOnly(std::function<void()> on_failure) {
    set_aside_only_ = true;
    on_failure_ = std::move(on_failure);
  }
  domain::Result<domain::PartitionOffsets> AppliedOffsets() override {
    return inner_.AppliedOffsets();
  }

  // Fails the next `count` writes with `error` (count < 0: until Heal()).
  void FailWith(domain::Error error, int count = -1) {
    std::lock_guard lock(mutex_);
    error_ = std::move(error);
    remaining_ = count;
  }
  void Heal() { FailWith({}, 0); }
  int failures() const { return failures_.load(); }

 private:
  std::optional<domain::Error> Fail() {
    std::lock_guard lock(mutex_);
    if (remaining_ == 0) return std::nullopt;
    if (remaining_ > 0) --remaining_;
    ++failures_;
    if (on_failure_) on_failure_();
    return error_;
  }

  ledger::LedgerWriter& inner_;
  std::mutex mutex_;
  domain::Error error_;
  int remaining_ = 0;
  std::atomic<int> failures_{0};
  bool set_aside_only_ = false;
  std::function<void()> on_failure_;
};

domain::Error DiskFull() {
  // What SQLite's SQLITE_FULL reads as (sqlite::ErrorCodeFor): retryable.
  return domain::MakeError(ErrorCode::kUnavailable, "sqlite: database or disk is full (13)");
}

class ApplierTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "rp-applier-XXXXXX").string();
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
    // The applier's own connection: the test reads through ledger_ while the applier writes.
    applier_ledger_ = ledger::OpenSqliteLedger(directory_ / "ledger.sqlite");
  }
  void TearDown() override {
    applier_ledger_.reset();
    ledger_.reset();
    fs::remove_all(directory_);
  }
  LedgerEvent Grab(domain::UserId user, domain::Cents amount, std::int64_t seq) const {
    return LedgerEvent{LedgerEvent::Type::kGrab, packet_id_, user, amount, seq, 1};
  }
  domain::Cents BalanceOf(domain::UserId user) { return *ledger_->Balance(user); }
  std::uint64_t Applied(std::int32_t partition = 0) {
    auto offsets = ledger_->AppliedOffsets();
    return offsets.ok() && offsets->contains(partition) ? offsets->at(partition) : 0;
  }
  std::vector<ledger::SetAsideRecord> SetAside() {
    auto facts = ledger_->ReadAuditFacts();
    EXPECT_TRUE(facts.ok());
    return facts.ok() ? facts->set_aside : std::vector<ledger::SetAsideRecord>{};
  }
  template <class Predicate>
  static void WaitFor(Predicate predicate) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!predicate()) {
      ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "timed out";
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }

  fs::path directory_;
  std::unique_ptr<ledger::Ledger> ledger_;
  std::unique_ptr<ledger::Ledger> applier_ledger_;
  domain::PacketId packet_id_ = 0;
};

ApplierOptions FastOptions() {
  ApplierOptions options;
  options.retry_initial = std::chrono::milliseconds(1);
  options.retry_max = std::chrono::milliseconds(2);
  return options;
}

TEST_F(ApplierTest, DuplicateDeliveriesCreditOnce) {
  FakeSource source;
  source.Queue(0, 1, Grab(7, 50, 1));
  source.Queue(0, 2, Grab(7, 50, 1));  // redelivered in the same batch
  source.Queue(3, 9, Grab(8, 30, 2));
  Applier applier(source, *ledger_, FastOptions());
  applier.Drain();
  source.Queue(0, 1, Grab(7, 50, 1));  // and again in a later batch (a rebalance, a restart)
  applier.Drain();
  EXPECT_EQ(BalanceOf(7), 50);
  EXPECT_EQ(BalanceOf(8), 30);
  EXPECT_EQ(source.committed[0], 2u);
  EXPECT_EQ(source.committed[3], 9u);
  EXPECT_TRUE(source.dead.empty());
  EXPECT_TRUE(SetAside().empty());
}

TEST_F(ApplierTest, APoisonEventIsKeptInTheLedgerAndTheRestOfItsBatchApplied) {
  FakeSource source;
  source.Queue(0, 1, Grab(7, 50, 1));
  source.Queue(0, 2, Grab(8, 999, 2));  // not share 2's amount
  source.Queue(0, 3, std::nullopt);     // undecodable
  source.Queue(0, 4, LedgerEvent{LedgerEvent::Type::kGrab, 424242, 9, 5, 1, 1});  // unknown packet
  source.Queue(0, 5, Grab(10, 20, 3));
  std::vector<std::uint64_t> handled;
  const domain::ManualTimeSource clock(domain::FromUnixMillis(1'900'000'000'000));  // 2030
  ApplierOptions options = FastOptions();
  options.clock = &clock;
  Applier applier(source, *ledger_, options, [&](std::span<const bus::ConsumedMessage> done) {
    for (const auto& message : done) handled.push_back(message.offset);
  });
  applier.Drain();
  EXPECT_EQ(BalanceOf(7), 50);
  EXPECT_EQ(BalanceOf(8), 0);
  EXPECT_EQ(BalanceOf(9), 0);
  EXPECT_EQ(BalanceOf(10), 20);
  // Kept whole in the ledger, in poll order, each with its reason.
  const std::vector<ledger::SetAsideRecord> kept = SetAside();
  ASSERT_EQ(kept.size(), 3u);
  EXPECT_EQ(kept[0].offset, 2u);
  EXPECT_NE(kept[0].reason.find("amount"), std::string::npos) << kept[0].reason;
  EXPECT_EQ(kept[0].event_id, Grab(8, 999, 2).EventId());
  EXPECT_EQ(kept[0].payload, bus::codec::EncodeEvent(Grab(8, 999, 2)));
  EXPECT_EQ(kept[0].at, clock.Now());  // the applier's clock, not the system's
  EXPECT_EQ(kept[1].offset, 3u);
  EXPECT_NE(kept[1].reason.find("undecodable"), std::string::npos);
  EXPECT_EQ(kept[1].event_id, "");
  EXPECT_EQ(kept[1].payload, "garbage");
  EXPECT_EQ(kept[2].offset, 4u);
  EXPECT_NE(kept[2].reason.find("unknown packet"), std::string::npos);
  // And copied to the bus's dead-letter channel, best effort (this copy failed: no matter).
  ASSERT_EQ(source.dead.size(), 3u);
  EXPECT_EQ(source.dead[0].first, 2u);
  EXPECT_EQ(Applied(), 5u);
  EXPECT_EQ(source.committed[0], 5u);  // the partition goes on
  EXPECT_EQ(applier.stats().dead_lettered, 3u);
  std::sort(handled.begin(), handled.end());
  EXPECT_EQ(handled, (std::vector<std::uint64_t>{1, 2, 3, 4, 5}));
}

TEST_F(ApplierTest, ALedgerThatCannotWriteStallsTheApplierAndNothingIsCommittedBefore) {
  FakeSource source;
  source.Queue(1, 40, Grab(7, 50, 1));
  source.Queue(1, 41, Grab(8, 30, 2));
  FailingLedger ledger(*applier_ledger_);
  // Not only "retryable" errors: whatever fails the whole batch and is not a refusal (a damaged
  // file, an I/O error reported as internal) leaves the events in the bus, never set aside.
  ledger.FailWith(domain::MakeError(ErrorCode::kInternal, "sqlite: disk I/O error (10)"), 3);
  Applier applier(source, ledger, FastOptions());
  EXPECT_EQ(applier.RunOnce(), 2u);
  EXPECT_EQ(BalanceOf(7), 50);
  EXPECT_EQ(BalanceOf(8), 30);
  EXPECT_EQ(applier.stats().retries, 3u);
  EXPECT_EQ(source.committed[1], 41u);
  EXPECT_TRUE(SetAside().empty());
  EXPECT_FALSE(applier.stall());  // writes again
}

TEST_F(ApplierTest, WhileStalledTheApplierSaysWhyAndMovesNoPosition) {
  FakeSource source;
  source.Queue(0, 1, Grab(7, 50, 1));
  FailingLedger ledger(*applier_ledger_);
  ledger.FailWith(DiskFull());
  const domain::ManualTimeSource clock(domain::FromUnixMillis(1'900'000'000'000));  // 2030
  ApplierOptions options = FastOptions();
  options.clock = &clock;
  Applier applier(source, ledger, options);
  applier.Start();
  WaitFor([&] { return ledger.failures() >= 5; });
  const auto stall = applier.stall();
  ASSERT_TRUE(stall.has_value());
  EXPECT_NE(stall->reason.find("database or disk is full"), std::string::npos);
  ASSERT_TRUE(applier.stats().stalled_since.has_value());
  EXPECT_EQ(*applier.stats().stalled_since, clock.Now());  // the applier's clock
  EXPECT_EQ(Applied(), 0u);
  EXPECT_TRUE(source.committed.empty());
  ledger.Heal();
  WaitFor([&] { return source.Committed(0) == 1u; });
  applier.Stop();
  EXPECT_EQ(BalanceOf(7), 50);
  EXPECT_EQ(Applied(), 1u);
  EXPECT_FALSE(applier.stall());
}

TEST_F(ApplierTest, APoisonEventOnAFullDiskWaitsForRoomAndIsNeverSkipped) {
  FakeSource source;
  source.Queue(0, 1, Grab(7, 50, 1));
  source.Queue(0, 2, Grab(8, 999, 2));  // refused: set aside once the disk has room
  source.Queue(0, 3, Grab(10, 20, 3));
  FailingLedger ledger(*applier_ledger_);
  // The whole batch is refused, the first event is applied alone, then the disk is full when
  // the second is to be set aside: it is tried again until there is room, and meanwhile the
  // position stays before it.
  std::vector<std::uint64_t> applied_meanwhile;
  std::size_t kept_meanwhile = 0;
  ledger.FailSetAsideOnly([&] {
    applied_meanwhile.push_back(Applied());
    kept_meanwhile += SetAside().size();
  });
  ledger.FailWith(DiskFull(), 5);
  Applier applier(source, ledger, FastOptions());
  EXPECT_EQ(applier.RunOnce(), 3u);
  EXPECT_EQ(applied_meanwhile, std::vector<std::uint64_t>(5, 1));
  EXPECT_EQ(kept_meanwhile, 0u);
  ASSERT_EQ(SetAside().size(), 1u);
  EXPECT_EQ(SetAside()[0].offset, 2u);
  EXPECT_EQ(BalanceOf(10), 20);
  EXPECT_EQ(Applied(), 3u);
  EXPECT_EQ(source.committed[0], 3u);
}

TEST_F(ApplierTest, StopWhileTheLedgerCannotWriteCommitsNothing) {
  FakeSource source;
  source.Queue(0, 1, Grab(7, 50, 1));
  FailingLedger ledger(*applier_ledger_);
  ledger.FailWith(DiskFull());
  Applier applier(source, ledger, FastOptions());
  applier.Start();
  while (applier.stats().retries < 3) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  applier.Stop();
  EXPECT_TRUE(source.committed.empty());  // the bus delivers it again after a restart
  EXPECT_EQ(BalanceOf(7), 0);
  EXPECT_EQ(Applied(), 0u);
}

TEST_F(ApplierTest, ACommitTheGroupWillNeverTakeIsDroppedAndPollingGoesOn) {
  FakeSource source;
  source.Queue(0, 1, Grab(7, 50, 1));
  source.commit_error =
      domain::MakeError(ErrorCode::kConflict, "kafka: commit failed: Broker: Unknown member");
  Applier applier(source, *ledger_, FastOptions());
  EXPECT_EQ(applier.RunOnce(), 1u);
  EXPECT_EQ(source.commit_attempts, 1);  // not retried
  EXPECT_EQ(applier.stats().commits_dropped, 1u);
  EXPECT_EQ(BalanceOf(7), 50);  // the ledger has it: a redelivery credits nothing twice
  // The next round polls (which is how a Kafka member rejoins its group).
  source.commit_error.reset();
  source.Queue(0, 1, Grab(7, 50, 1));
  source.Queue(0, 2, Grab(8, 30, 2));
  EXPECT_EQ(applier.RunOnce(), 2u);
  EXPECT_EQ(source.committed[0], 2u);
  EXPECT_EQ(BalanceOf(7), 50);
  EXPECT_EQ(BalanceOf(8), 30);
}

TEST_F(ApplierTest, ACommitThatMayPassIsRetried) {
  FakeSource source;
  source.Queue(0, 1, Grab(7, 50, 1));
  source.commit_error = domain::MakeError(ErrorCode::kUnavailable, "kafka: broker down");
  Applier applier(source, *ledger_, FastOptions());
  std::thread heal([&] {
    WaitFor([&] {
      std::lock_guard lock(source.mutex_);
      return source.commit_attempts >= 3;
    });
    std::lock_guard lock(source.mutex_);
    source.commit_error.reset();
  });
  EXPECT_EQ(applier.RunOnce(), 1u);
  heal.join();
  EXPECT_EQ(source.committed[0], 1u);
  EXPECT_EQ(applier.stats().commits_dropped, 0u);
}

// The embedded server's balance: the ledger's balance and applied position from one snapshot,
// plus the credits beyond that position. After a full ledger disk the applier used to move its
// position past events it had set aside without recording it, so every later read found its
// snapshot older than the credits' and answered 503 "the balance is being updated" for good.
TEST_F(ApplierTest, BalanceReadsAnswerWhileTheLedgerCannotWriteAndAfter) {
  FakeSource source;
  service::PendingCredits pending;
  pending.Reset(0);
  FailingLedger ledger(*applier_ledger_);
  // What SQLITE_FULL read as before errors were sorted: not even "retryable".
  const domain::Error disk_full =
      domain::MakeError(ErrorCode::kInternal, "sqlite: database or disk is full (13)");
  Applier applier(source, ledger, FastOptions(), [&](std::span<const bus::ConsumedMessage> done) {
    std::uint64_t last = 0;
    for (const auto& message : done) last = std::max(last, message.offset);
    pending.Remove(last);
  });
  auto read = [&](domain::UserId user) -> std::optional<domain::Cents> {
    auto snapshot = ledger_->BalanceWithOffsets(user);
    EXPECT_TRUE(snapshot.ok());
    const auto& offsets = snapshot->applied_offsets;
    auto beyond = pending.Beyond(user, offsets.contains(0) ? offsets.at(0) : 0);
    if (!beyond) return std::nullopt;
    return snapshot->balance_cents + *beyond;
  };
  auto deliver = [&](std::uint64_t position, const LedgerEvent& event) {
    pending.Add(std::vector{service::PendingEvent{position, event.user_id, event.amount_cents}});
    source.Queue(0, position, event);
  };
  deliver(1, Grab(7, 50, 1));
  applier.Drain();
  ledger.FailWith(disk_full);
  deliver(2, Grab(8, 30, 2));
  deliver(3, Grab(8, 999, 3));  // would be refused (amount): but first the disk must have room
  applier.Start();
  WaitFor([&] { return ledger.failures() >= 5; });
  EXPECT_EQ(read(7), 50);
  EXPECT_EQ(read(8), 30 + 999);  // pending, as the bus holds it
  ledger.Heal();
  WaitFor([&] { return Applied() == 3u; });
  applier.Stop();
  // No event comes after: the last reads must still answer.
  EXPECT_EQ(read(7), 50);
  EXPECT_EQ(read(8), 30);
  ASSERT_EQ(SetAside().size(), 1u);
}

}  // namespace
}  // namespace redpacket::applier
