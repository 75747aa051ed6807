// The loader over in-memory fakes of the store's restore side and of the bus's positions, and a
// real SQLite ledger with load intents kept beside it: a packet whose keys are missing is
// reserved, then restored only once none of its events waits in the outbox and the ledger has
// applied the bus up to its end; never before. A load cut short is resumed at once; a finished
// packet is unregistered, not loaded; packets reported lost become intents.
#include "loader/packet_loader.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <map>
#include <set>

#include "ledger/sqlite/sqlite_ledger.h"
#include "tests/support/ledger_packets.h"

namespace redpacket::loader {
namespace {

namespace fs = std::filesystem;
using domain::LedgerEvent;
using domain::PacketId;

// What the loader sees of Redis.
class FakeStore final : public store::PacketStore,
                        public store::RestoreTarget,
                        public store::Outbox {
 public:
  enum class State { kMissing, kReserved, kLoading, kHeld };
  std::map<PacketId, State> states;
  std::map<PacketId, ledger::PacketRecord> loaded;
  std::set<PacketId> in_outbox;
  std::vector<PacketId> lost_queue;
  std::vector<PacketId> unregistered;

  // PacketStore: only Add matters here.
  void Add(const ledger::PacketRecord& packet, StatusCallback done) override {
    loaded[packet.packet_id] = packet;
    states[packet.packet_id] = State::kHeld;
    done({});
  }
  void Grab(PacketId, domain::UserId, domain::TimePoint, GrabCallback) override {}
  void Snapshot(PacketId, SnapshotCallback done) override { done(std::nullopt); }
  void CountGrabs(PacketId, CountCallback) override {}
  store::SweepStats Sweep(domain::TimePoint, std::uint64_t, std::chrono::milliseconds) override {
    return {};
  }
  std::size_t size() const override { return loaded.size(); }

  // RestoreTarget.
  domain::Result<store::Reservation> Reserve(PacketId id, domain::TimePoint) override {
    State& state = states[id];  // absent: missing
    if (state == State::kMissing) state = State::kReserved;
    if (state == State::kReserved) return store::Reservation::kReserved;
    if (state == State::kLoading) return store::Reservation::kLoading;
    return store::Reservation::kHeld;
  }
  domain::Result<std::vector<PacketId>> TakeLost(std::size_t) override {
    return std::exchange(lost_queue, {});
  }
  domain::Status Unregister(PacketId id) override {
    unregistered.push_back(id);
    if (states[id] == State::kReserved) states[id] = State::kMissing;
    return {};
  }

  // Outbox: only Holds matters here.
  void Remove(Entries) override {}
  domain::Result<Entries> Claim(std::chrono::milliseconds, std::size_t) override {
    return Entries{};
  }
  domain::Result<bool> Holds(PacketId id) override { return in_outbox.contains(id); }
};

class FakeBus final : public bus::BusPositions {
 public:
  domain::PartitionOffsets end;
  int asked = 0;
  domain::Result<domain::PartitionOffsets> EndOffsets(std::chrono::milliseconds) override {
    ++asked;
    return end;
  }
};

// The SQLite ledger with load intents kept beside it (SQLite keeps none: ledger.h), and applied
// offsets set by the test.
class IntentLedger final : public ledger::Ledger {
 public:
  explicit IntentLedger(std::unique_ptr<ledger::Ledger> inner) : inner_(std::move(inner)) {}
  std::set<PacketId> intents;
  domain::PartitionOffsets applied;

  domain::Status RequestLoad(PacketId id) override {
    intents.insert(id);
    return {};
  }
  domain::Status CompleteLoad(PacketId id) override {
    intents.erase(id);
    return {};
  }
  domain::Result<std::vector<PacketId>> PendingLoads(std::size_t) override {
    return std::vector<PacketId>(intents.begin(), intents.end());
  }
  domain::Result<domain::PartitionOffsets> AppliedOffsets() override { return applied; }

  domain::Status Migrate() override { return inner_->Migrate(); }
  domain::Result<ledger::UserRecord> CreateUser(std::string_view name) override {
    return inner_->CreateUser(name);
  }
  domain::Result<domain::Cents> Deposit(domain::UserId user, domain::Cents amount,
                                        std::string_view request_id) override {
    return inner_->Deposit(user, amount, request_id);
  }
  domain::Result<ledger::PacketRecord> CreatePacket(const domain::PacketSpec& spec,
                                                    const std::vector<domain::Cents>& shares,
                                                    domain::TimePoint created_at,
                                                    domain::TimePoint expires_at,
                                                    std::string_view request_id) override {
    return inner_->CreatePacket(spec, shares, created_at, expires_at, request_id);
  }
  domain::Status ApplyEvents(std::span<const LedgerEvent> events,
                             const domain::PartitionOffsets& offsets) override {
    return inner_->ApplyEvents(events, offsets);
  }
  domain::Result<domain::Cents> Balance(domain::UserId user) override {
    return inner_->Balance(user);
  }
  domain::Result<ledger::HistoryPage> History(domain::UserId user, ledger::HistoryKind kind,
                                              int limit, std::string_view cursor) override {
    return inner_->History(user, kind, limit, cursor);
  }
  domain::Result<std::optional<ledger::PacketRecord>> GetPacket(PacketId id) override {
    return inner_->GetPacket(id);
  }
  domain::Result<std::vector<ledger::PacketRecord>> LoadUnfinishedPackets() override {
    return inner_->LoadUnfinishedPackets();
  }
  domain::Result<std::vector<ledger::PacketProgress>> ListUnfinishedPackets() override {
    return inner_->ListUnfinishedPackets();
  }
  domain::Result<ledger::AuditFacts> ReadAuditFacts() override { return inner_->ReadAuditFacts(); }

 private:
  std::unique_ptr<ledger::Ledger> inner_;
};

class PacketLoaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "rp-loader-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    directory_ = pattern;
    ledger_ =
        std::make_unique<IntentLedger>(ledger::OpenSqliteLedger(directory_ / "ledger.sqlite"));
    ASSERT_TRUE(ledger_->Migrate().ok());
    loader_ = std::make_unique<PacketLoader>(store_, store_, store_, *ledger_, bus_);
  }
  void TearDown() override {
    loader_.reset();
    ledger_.reset();
    fs::remove_all(directory_);
  }
  ledger::PacketRecord Create(std::vector<domain::Cents> shares) {
    ledger::PacketRecord packet = testing_support::CreateFundedPacket(*ledger_, std::move(shares));
    ledger_->RequestLoad(packet.packet_id);
    return packet;
  }
  void ApplyGrab(const ledger::PacketRecord& packet, domain::UserId user, std::int64_t seq,
                 std::uint64_t offset) {
    const LedgerEvent grab{LedgerEvent::Type::kGrab,
                           packet.packet_id,
                           user,
                           packet.shares[static_cast<std::size_t>(seq - 1)],
                           seq,
                           1000};
    ASSERT_TRUE(ledger_->ApplyEvents(std::span(&grab, 1), {{0, offset}}).ok());
    ledger_->applied[0] = offset;
  }
  LoaderStats Pass() {
    auto stats = loader_->RunOnce();
    EXPECT_TRUE(stats.ok()) << stats.error().message;
    return stats.ok() ? *stats : LoaderStats{};
  }

  fs::path directory_;
  FakeStore store_;
  FakeBus bus_;
  std::unique_ptr<IntentLedger> ledger_;
  std::unique_ptr<PacketLoader> loader_;
};

TEST_F(PacketLoaderTest, RestoresALostPacketOnlyOnceTheLedgerHoldsEveryEvent) {
  const ledger::PacketRecord packet = Create({10, 20, 30});
  ApplyGrab(packet, 7, 1, 4);
  // Lost while the ledger lags: a second grab sits in the bus up to offset 9 (end 10).
  bus_.end = {{0, 10}, {1, 0}};
  LoaderStats stats = Pass();
  EXPECT_EQ(stats.waiting, 1u);
  EXPECT_EQ(store_.states[packet.packet_id], FakeStore::State::kReserved)
      << "reserved at once: its grabs answer 503";
  EXPECT_FALSE(store_.loaded.contains(packet.packet_id)) << "never from a lagging ledger";
  EXPECT_TRUE(ledger_->intents.contains(packet.packet_id));
  stats = Pass();
  EXPECT_EQ(stats.waiting, 1u);
  EXPECT_EQ(bus_.asked, 1) << "the target is read once, after the outbox was empty";

  ApplyGrab(packet, 8, 2, 9);  // the worker catches up
  stats = Pass();
  EXPECT_EQ(stats.restored, 1u);
  ASSERT_TRUE(store_.loaded.contains(packet.packet_id));
  const ledger::PacketRecord& restored = store_.loaded[packet.packet_id];
  ASSERT_EQ(restored.grabs.size(), 2u) << "both taken shares stay taken";
  EXPECT_EQ(restored.grabs[1].user_id, 8);
  EXPECT_FALSE(ledger_->intents.contains(packet.packet_id));
}

TEST_F(PacketLoaderTest, WaitsWhileTheOutboxStillHoldsThePacketsEvents) {
  const ledger::PacketRecord packet = Create({10, 20});
  store_.in_outbox.insert(packet.packet_id);
  LoaderStats stats = Pass();
  EXPECT_EQ(stats.waiting, 1u);
  EXPECT_EQ(bus_.asked, 0) << "where the bus ends means nothing while events wait to be sent";
  store_.in_outbox.clear();
  stats = Pass();
  EXPECT_EQ(stats.restored, 1u);
  EXPECT_EQ(bus_.asked, 1);
}

TEST_F(PacketLoaderTest, ALoadCutShortIsResumedAtOnce) {
  const ledger::PacketRecord packet = Create({10, 20});
  store_.states[packet.packet_id] = FakeStore::State::kLoading;
  bus_.end = {{0, 100}};  // irrelevant: nobody could grab a packet still loading
  const LoaderStats stats = Pass();
  EXPECT_EQ(stats.loaded, 1u);
  EXPECT_TRUE(store_.loaded.contains(packet.packet_id));
  EXPECT_EQ(bus_.asked, 0);
  EXPECT_TRUE(ledger_->intents.empty());
}

TEST_F(PacketLoaderTest, AHeldPacketIsAddedAgainToFinishItsRegistrationThenCompleted) {
  const ledger::PacketRecord packet = Create({10, 20});
  store_.states[packet.packet_id] = FakeStore::State::kHeld;
  const LoaderStats stats = Pass();
  EXPECT_EQ(stats.loaded + stats.restored, 0u);
  EXPECT_TRUE(store_.loaded.contains(packet.packet_id))
      << "Add is idempotent on a held packet and registers it for expiry";
  EXPECT_EQ(bus_.asked, 0) << "no wait: nothing is offered again";
  EXPECT_TRUE(ledger_->intents.empty());
}

TEST_F(PacketLoaderTest, AFinishedPacketIsUnregisteredNotLoaded) {
  const ledger::PacketRecord packet = Create({10, 20});
  const LedgerEvent refund{LedgerEvent::Type::kRefund, packet.packet_id, 1, 30, 0, 1000};
  ASSERT_TRUE(ledger_->ApplyEvents(std::span(&refund, 1), {{0, 1}}).ok());
  const LoaderStats stats = Pass();
  EXPECT_EQ(stats.finished, 1u);
  EXPECT_EQ(store_.unregistered, std::vector<PacketId>{packet.packet_id});
  EXPECT_FALSE(store_.loaded.contains(packet.packet_id));
  EXPECT_TRUE(ledger_->intents.empty());
}

TEST_F(PacketLoaderTest, PacketsReportedLostBecomeIntentsAndAreRestored) {
  const ledger::PacketRecord packet = Create({10, 20});
  ledger_->CompleteLoad(packet.packet_id);  // loaded long ago
  store_.lost_queue = {packet.packet_id};
  const LoaderStats stats = Pass();
  EXPECT_EQ(stats.reported_lost, 1u);
  EXPECT_EQ(stats.restored, 1u);
  EXPECT_TRUE(store_.loaded.contains(packet.packet_id));
}

}  // namespace
}  // namespace redpacket::loader
