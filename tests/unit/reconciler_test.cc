// The reconciler over the memory store and a real SQLite ledger: a grab the store decided but
// the ledger never got is re-emitted once it is old enough, and a packet the ledger has but the
// store lost is reloaded.
#include "reconciler/reconciler.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <future>
#include <mutex>

#include "ledger/sqlite/sqlite_ledger.h"
#include "store/memory/memory_store.h"

namespace redpacket::reconciler {
namespace {

namespace fs = std::filesystem;
using domain::LedgerEvent;

// Acknowledges at once and remembers what it was given.
class RecordingSink final : public bus::EventSink {
 public:
  std::uint64_t Append(const LedgerEvent& event, Completion done) override {
    {
      std::lock_guard lock(mutex_);
      events.push_back(event);
    }
    done();
    return 0;
  }
  void WhenDurable(std::uint64_t, Completion done) override { done(); }
  std::vector<LedgerEvent> Take() {
    std::lock_guard lock(mutex_);
    return std::exchange(events, {});
  }

 private:
  std::mutex mutex_;
  std::vector<LedgerEvent> events;
};

class ReconcilerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "rp-reconciler-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    directory_ = pattern;
    ledger_ = ledger::OpenSqliteLedger(directory_ / "ledger.sqlite");
    ASSERT_TRUE(ledger_->Migrate().ok());
    store_ = store::MakeMemoryStore(sink_);
  }
  void TearDown() override {
    store_.reset();
    ledger_.reset();
    fs::remove_all(directory_);
  }
  ledger::PacketRecord CreatePacket(std::vector<domain::Cents> shares) {
    domain::Cents total = 0;
    for (auto share : shares) total += share;
    EXPECT_TRUE(ledger_->Deposit(1, total, "").ok());
    domain::PacketSpec spec{.sender_id = 1,
                            .kind = domain::PacketKind::kLucky,
                            .total_cents = total,
                            .count = static_cast<std::int64_t>(shares.size()),
                            .greeting = "",
                            .expires_in_s = 3600,
                            .receiver_id = {}};
    auto packet = ledger_->CreatePacket(spec, shares, domain::Clock::now(),
                                        domain::Clock::now() + std::chrono::hours(1), "");
    EXPECT_TRUE(packet.ok());
    return *packet;
  }
  store::GrabResult Grab(domain::PacketId packet, domain::UserId user) {
    std::promise<store::GrabResult> result;
    store_->Grab(packet, user, domain::Clock::now(),
                 [&](store::GrabResult grab) { result.set_value(std::move(grab)); });
    return result.get_future().get();
  }

  fs::path directory_;
  RecordingSink sink_;
  std::unique_ptr<ledger::Ledger> ledger_;
  std::unique_ptr<store::PacketStore> store_;
};

TEST_F(ReconcilerTest, ReemitsGrabsTheLedgerLacksOnceTheyAreOldEnough) {
  const ledger::PacketRecord packet = CreatePacket({10, 20, 30});
  std::promise<domain::Status> added;
  store_->Add(packet, [&](domain::Status status) { added.set_value(status); });
  ASSERT_TRUE(added.get_future().get().ok());
  for (domain::UserId user : {7, 8, 9})
    ASSERT_EQ(Grab(packet.packet_id, user).code, domain::ErrorCode::kOk);
  // Only the first grab reached the ledger; the other two answered 503 (say, Kafka was down).
  std::vector<LedgerEvent> sent = sink_.Take();
  ASSERT_EQ(sent.size(), 3u);
  ASSERT_TRUE(ledger_->ApplyEvents(std::span(sent).first(1), {}).ok());

  ReconcilerOptions options;
  options.min_age = std::chrono::minutes(1);
  Reconciler reconciler(*store_, *ledger_, sink_, options);
  auto stats = reconciler.RunOnce(domain::Clock::now());
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->grabs_reemitted, 0u);  // too young: their own events may be in flight
  EXPECT_TRUE(sink_.Take().empty());
  stats = reconciler.RunOnce(domain::Clock::now() + std::chrono::seconds(30));
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->grabs_reemitted, 0u);  // the ledger behind for less than min_age: still young

  stats = reconciler.RunOnce(domain::Clock::now() + std::chrono::minutes(2));
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->packets_checked, 1u);
  EXPECT_EQ(stats->grabs_reemitted, 2u);
  std::vector<LedgerEvent> reemitted = sink_.Take();
  ASSERT_EQ(reemitted.size(), 2u);
  EXPECT_EQ(reemitted[0], sent[1]);
  EXPECT_EQ(reemitted[1], sent[2]);
  // Applied (with a duplicate of the first), the ledger is whole and credits each grab once.
  reemitted.push_back(sent[0]);
  ASSERT_TRUE(ledger_->ApplyEvents(reemitted, {}).ok());
  EXPECT_EQ(*ledger_->Balance(7) + *ledger_->Balance(8) + *ledger_->Balance(9), 60);
  // The packet is exhausted in the ledger now: nothing left to reconcile.
  stats = reconciler.RunOnce(domain::Clock::now() + std::chrono::minutes(2));
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->packets_checked, 0u);
}

TEST_F(ReconcilerTest, ReloadsAPacketTheStoreLost) {
  const ledger::PacketRecord packet = CreatePacket({5, 5});
  // Never added to the store: the create's Redis part failed after the ledger debited.
  EXPECT_EQ(Grab(packet.packet_id, 7).code, domain::ErrorCode::kNotFound);
  Reconciler reconciler(*store_, *ledger_, sink_);
  auto stats = reconciler.RunOnce(domain::Clock::now());
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->packets_reloaded, 1u);
  EXPECT_EQ(Grab(packet.packet_id, 7).code, domain::ErrorCode::kOk);
}

}  // namespace
}  // namespace redpacket::reconciler
