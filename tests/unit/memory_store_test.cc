// The embedded engine's grab decision with real threads, over an in-memory EventSink whose
// durability the test controls.
#include <atomic>
#include <mutex>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "store/memory/memory_store.h"

namespace redpacket::store {
namespace {

using domain::ErrorCode;
using domain::LedgerEvent;

// Records appended events; completions run when the test calls MakeDurable().
class FakeSink final : public bus::EventSink {
 public:
  std::uint64_t Append(const LedgerEvent& event, Completion done) override {
    std::lock_guard lock(mutex_);
    events_.push_back(event);
    pending_.emplace_back(events_.size(), std::move(done));
    return events_.size();
  }
  void WhenDurable(std::uint64_t position, Completion done) override {
    std::unique_lock lock(mutex_);
    if (position <= durable_) {
      lock.unlock();
      done();
      return;
    }
    pending_.emplace_back(position, std::move(done));
  }
  void MakeDurable() {
    std::vector<std::pair<std::uint64_t, Completion>> ready;
    {
      std::lock_guard lock(mutex_);
      durable_ = events_.size();
      ready.swap(pending_);
    }
    for (auto& [position, done] : ready) done();
  }
  std::vector<LedgerEvent> events() {
    std::lock_guard lock(mutex_);
    return events_;
  }

 private:
  std::mutex mutex_;
  std::vector<LedgerEvent> events_;
  std::vector<std::pair<std::uint64_t, Completion>> pending_;
  std::uint64_t durable_ = 0;
};

ledger::PacketRecord MakePacket(domain::PacketId id, std::vector<domain::Cents> shares,
                                std::chrono::seconds expires_in = std::chrono::seconds(3600)) {
  ledger::PacketRecord packet;
  packet.packet_id = id;
  packet.spec.sender_id = 1;
  packet.spec.count = static_cast<std::int64_t>(shares.size());
  for (auto share : shares) packet.spec.total_cents += share;
  packet.created_at = domain::Clock::now();
  packet.expires_at = packet.created_at + expires_in;
  packet.shares = std::move(shares);
  return packet;
}

TEST(MemoryStore, StampedeOnOnePacketGivesExactlyCountGrabs) {
  FakeSink sink;
  auto store = MakeMemoryStore(sink);
  std::vector<domain::Cents> shares(100);
  for (std::size_t i = 0; i < shares.size(); ++i) shares[i] = static_cast<domain::Cents>(i + 1);
  store->Add(MakePacket(1, shares), nullptr);

  constexpr int kThreads = 8;
  constexpr int kUsersPerThread = 100;
  std::atomic<int> ok{0};
  std::atomic<int> gone{0};
  std::atomic<domain::Cents> sum{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kUsersPerThread; ++i) {
        store->Grab(1, t * kUsersPerThread + i + 1, domain::Clock::now(), [&](GrabResult result) {
          if (result.code == ErrorCode::kOk) {
            ++ok;
            sum += result.amount_cents;
          } else if (result.code == ErrorCode::kGone) {
            ++gone;
          }
        });
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(ok.load(), 0) << "no success may be reported before it is durable";
  sink.MakeDurable();
  EXPECT_EQ(ok.load(), 100);
  EXPECT_EQ(gone.load(), kThreads * kUsersPerThread - 100);
  EXPECT_EQ(sum.load(), 5050);
  std::set<std::int64_t> seqs;
  std::set<domain::UserId> users;
  for (const auto& event : sink.events()) {
    EXPECT_TRUE(seqs.insert(event.seq).second);
    EXPECT_TRUE(users.insert(event.user_id).second);
    EXPECT_EQ(event.amount_cents, shares[static_cast<std::size_t>(event.seq - 1)]);
  }
  EXPECT_EQ(seqs.size(), 100u);
  std::optional<PacketSnapshot> snapshot;
  store->Snapshot(1, [&](std::optional<PacketSnapshot> s) { snapshot = std::move(s); });
  ASSERT_TRUE(snapshot);
  EXPECT_EQ(snapshot->record.status, domain::PacketStatus::kExhausted);
  EXPECT_EQ(snapshot->remaining_cents, 0);
}

TEST(MemoryStore, RepeatIsConflictWithTheFirstAmountOnceDurable) {
  FakeSink sink;
  auto store = MakeMemoryStore(sink);
  store->Add(MakePacket(1, {30, 70}), nullptr);
  GrabResult first;
  GrabResult second;
  store->Grab(1, 5, domain::Clock::now(), [&](GrabResult r) { first = r; });
  store->Grab(1, 5, domain::Clock::now(), [&](GrabResult r) { second = r; });
  EXPECT_EQ(second.code, ErrorCode::kOk) << "the 409 must wait for the first grab to be durable";
  EXPECT_EQ(second.seq, 0);
  sink.MakeDurable();
  EXPECT_EQ(first.code, ErrorCode::kOk);
  EXPECT_EQ(second.code, ErrorCode::kConflict);
  EXPECT_EQ(second.amount_cents, first.amount_cents);
  EXPECT_EQ(sink.events().size(), 1u);
}

TEST(MemoryStore, ExclusivePacketOnlyForItsReceiver) {
  FakeSink sink;
  auto store = MakeMemoryStore(sink);
  auto packet = MakePacket(1, {500});
  packet.spec.receiver_id = 9;
  store->Add(packet, nullptr);
  GrabResult other;
  store->Grab(1, 8, domain::Clock::now(), [&](GrabResult r) { other = r; });
  EXPECT_EQ(other.code, ErrorCode::kForbidden);
  GrabResult mine;
  store->Grab(1, 9, domain::Clock::now(), [&](GrabResult r) { mine = r; });
  sink.MakeDurable();
  EXPECT_EQ(mine.code, ErrorCode::kOk);
  EXPECT_EQ(mine.amount_cents, 500);
}

TEST(MemoryStore, UnknownPacketIsNotFoundWithoutMessage) {
  FakeSink sink;
  auto store = MakeMemoryStore(sink);
  GrabResult result;
  store->Grab(42, 1, domain::Clock::now(), [&](GrabResult r) { result = r; });
  EXPECT_EQ(result.code, ErrorCode::kNotFound);
  EXPECT_TRUE(result.message.empty());
}

TEST(MemoryStore, ExpiryRefundsTheRestOnceAndAfterTheGrabs) {
  FakeSink sink;
  auto store = MakeMemoryStore(sink);
  store->Add(MakePacket(1, {10, 20, 30}, std::chrono::seconds(60)), nullptr);
  store->Grab(1, 2, domain::Clock::now(), [](GrabResult) {});
  const auto later = domain::Clock::now() + std::chrono::seconds(61);
  GrabResult late;
  store->Grab(1, 3, later, [&](GrabResult r) { late = r; });
  EXPECT_EQ(late.code, ErrorCode::kGone);

  EXPECT_EQ(store->Sweep(later, 0, std::chrono::milliseconds(0)).closed, 1u);
  EXPECT_EQ(store->Sweep(later, 0, std::chrono::milliseconds(0)).closed, 0u) << "closed once";
  auto events = sink.events();
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].type, LedgerEvent::Type::kGrab);
  EXPECT_EQ(events[1].type, LedgerEvent::Type::kRefund);
  EXPECT_EQ(events[0].amount_cents + events[1].amount_cents, 60);
  EXPECT_EQ(events[1].user_id, 1);

  sink.MakeDurable();
  std::optional<PacketSnapshot> snapshot;
  store->Snapshot(1, [&](std::optional<PacketSnapshot> s) { snapshot = std::move(s); });
  ASSERT_TRUE(snapshot);
  EXPECT_EQ(snapshot->record.status, domain::PacketStatus::kRefunded);
  // Evicted only once the ledger has applied its last event.
  EXPECT_EQ(store->Sweep(later, 1, std::chrono::milliseconds(0)).evicted, 0u);
  EXPECT_EQ(store->Sweep(later, 2, std::chrono::milliseconds(0)).evicted, 1u);
  store->Snapshot(1, [&](std::optional<PacketSnapshot> s) { snapshot = std::move(s); });
  EXPECT_FALSE(snapshot);
}

TEST(MemoryStore, RecoveredPacketKeepsItsGrabs) {
  FakeSink sink;
  auto store = MakeMemoryStore(sink);
  auto packet = MakePacket(1, {10, 20, 30});
  packet.grabs.push_back({7, 10, 1, domain::Clock::now()});
  store->Add(packet, nullptr);
  GrabResult repeat;
  store->Grab(1, 7, domain::Clock::now(), [&](GrabResult r) { repeat = r; });
  EXPECT_EQ(repeat.code, ErrorCode::kConflict);
  EXPECT_EQ(repeat.amount_cents, 10);
  GrabResult next;
  store->Grab(1, 8, domain::Clock::now(), [&](GrabResult r) { next = r; });
  sink.MakeDurable();
  EXPECT_EQ(next.seq, 2);
  EXPECT_EQ(next.amount_cents, 20);
}

}  // namespace
}  // namespace redpacket::store
