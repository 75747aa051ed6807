// The reconciler, a check that reports, over the memory store and a real SQLite ledger: grabs the
// store decided and the ledger has not applied are counted, and a packet the ledger has
// unfinished but the store does not hold is reported lost to the store (for the loader).
#include "reconciler/reconciler.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <future>
#include <mutex>

#include "ledger/sqlite/sqlite_ledger.h"
#include "store/memory/memory_store.h"
#include "tests/support/ledger_packets.h"

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
  // The memory store never loses a packet: this one remembers what it was told was lost.
  class LostRecorder final : public store::PacketStore {
   public:
    explicit LostRecorder(store::PacketStore& inner) : inner_(inner) {}
    void Add(const ledger::PacketRecord& packet, StatusCallback done) override {
      inner_.Add(packet, std::move(done));
    }
    void Grab(domain::PacketId id, domain::UserId user, domain::TimePoint now,
              GrabCallback done) override {
      inner_.Grab(id, user, now, std::move(done));
    }
    void Snapshot(domain::PacketId id, SnapshotCallback done) override {
      inner_.Snapshot(id, std::move(done));
    }
    void CountGrabs(domain::PacketId id, CountCallback done) override {
      inner_.CountGrabs(id, std::move(done));
    }
    store::SweepStats Sweep(domain::TimePoint now, std::uint64_t applied,
                            std::chrono::milliseconds retention) override {
      return inner_.Sweep(now, applied, retention);
    }
    std::size_t size() const override { return inner_.size(); }
    void ReportLost(domain::PacketId id) override { lost.push_back(id); }
    std::vector<domain::PacketId> lost;

   private:
    store::PacketStore& inner_;
  };

  void TearDown() override {
    store_.reset();
    ledger_.reset();
    fs::remove_all(directory_);
  }
  ledger::PacketRecord CreatePacket(std::vector<domain::Cents> shares) {
    ledger::PacketRecord packet = testing_support::CreateFundedPacket(*ledger_, std::move(shares));
    return packet;
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

TEST_F(ReconcilerTest, CountsGrabsTheLedgerHasNotAppliedAndRepairsNothing) {
  const ledger::PacketRecord packet = CreatePacket({10, 20, 30});
  std::promise<domain::Status> added;
  store_->Add(packet, [&](domain::Status status) { added.set_value(status); });
  ASSERT_TRUE(added.get_future().get().ok());
  for (domain::UserId user : {7, 8, 9})
    ASSERT_EQ(Grab(packet.packet_id, user).code, domain::ErrorCode::kOk);
  std::vector<LedgerEvent> sent = sink_.Take();
  ASSERT_EQ(sent.size(), 3u);
  ASSERT_TRUE(ledger_->ApplyEvents(std::span(sent).first(1), {}).ok());

  LostRecorder store(*store_);
  Reconciler reconciler(store, *ledger_);
  auto stats = reconciler.RunOnce();
  ASSERT_TRUE(stats.ok()) << stats.error().message;
  EXPECT_EQ(stats->packets_checked, 1u);
  EXPECT_EQ(stats->packets_behind, 1u);
  EXPECT_EQ(stats->grabs_behind, 2);
  EXPECT_EQ(stats->packets_lost, 0u);
  EXPECT_TRUE(store.lost.empty());
  EXPECT_TRUE(sink_.Take().empty()) << "the check publishes nothing";
  auto in_ledger = ledger_->GetPacket(packet.packet_id);
  ASSERT_TRUE(in_ledger.ok() && in_ledger->has_value());
  EXPECT_EQ((*in_ledger)->grabs.size(), 1u) << "the check writes nothing";

  ASSERT_TRUE(ledger_->ApplyEvents(std::span(sent).subspan(1), {}).ok());
  stats = reconciler.RunOnce();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->packets_behind, 0u);
}

TEST_F(ReconcilerTest, ReportsAPacketTheStoreLostToTheStore) {
  const ledger::PacketRecord packet = CreatePacket({10, 20});  // in the ledger, never loaded
  LostRecorder store(*store_);
  Reconciler reconciler(store, *ledger_);
  auto stats = reconciler.RunOnce();
  ASSERT_TRUE(stats.ok()) << stats.error().message;
  EXPECT_EQ(stats->packets_lost, 1u);
  EXPECT_EQ(store.lost, std::vector<domain::PacketId>{packet.packet_id});
  EXPECT_EQ(store_->size(), 0u) << "reported, not reloaded: the loader restores it safely";
}

}  // namespace
}  // namespace redpacket::reconciler
