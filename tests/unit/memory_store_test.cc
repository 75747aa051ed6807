// The embedded engine's grab decision with real threads, over an in-memory EventSink whose
// durability the test controls.
#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "store/memory/memory_store.h"

namespace redpacket::store {
namespace {

using domain::ErrorCode;
using domain::LedgerEvent;

// Records appended events; completions run when the test calls MakeDurable(). Fill() is the
// journal's disk filling up: what can fail fails, and the sink refuses new events until Free().
class FakeSink final : public bus::EventSink {
 public:
  domain::Status Accepting() const override {
    if (!full_.load()) return {};
    return domain::MakeError(ErrorCode::kUnavailable, "the journal's disk is full; retry");
  }
  std::uint64_t AppendOrFail(const LedgerEvent& event, Completion done, Failure failed) override {
    const std::uint64_t position = Append(event, std::move(done));
    std::lock_guard lock(mutex_);
    failures_.emplace_back(position, std::move(failed));
    return position;
  }
  void WhenDurableOrFail(std::uint64_t position, Completion done, Failure failed) override {
    if (full_.load() && position > durable_position()) {
      failed(Accepting().error());
      return;
    }
    WhenDurable(position, std::move(done));
  }
  void Fill() {
    full_ = true;
    std::vector<Failure> failing;
    {
      std::lock_guard lock(mutex_);
      for (auto& [position, failed] : failures_) {
        if (position <= durable_) continue;
        // Exactly one of the two runs: the completion is dropped.
        for (auto& [pending_position, done] : pending_) {
          if (pending_position == position) done = [] {};
        }
        failing.push_back(std::move(failed));
      }
      failures_.clear();
    }
    for (Failure& failed : failing) failed(domain::MakeError(ErrorCode::kUnavailable, "full"));
  }
  void Free() { full_ = false; }
  std::uint64_t durable_position() {
    std::lock_guard lock(mutex_);
    return durable_;
  }

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
  std::vector<std::pair<std::uint64_t, Failure>> failures_;
  std::uint64_t durable_ = 0;
  std::atomic<bool> full_{false};
};

domain::PacketRecord MakePacket(domain::PacketId id, std::vector<domain::Cents> shares,
                                std::chrono::seconds expires_in = std::chrono::seconds(3600)) {
  domain::PacketRecord packet;
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

// Nothing is decided that could not be written: while the journal's disk is full a new grab is
// refused before it takes a share, and a grab decided just before hears 503 at once; its share
// stays taken (the event is written once there is room), so a retry answers 409 with it.
TEST(MemoryStore, AFullJournalDiskRefusesNewGrabsAndFailsThoseNotDurable) {
  FakeSink sink;
  auto store = MakeMemoryStore(sink);
  store->Add(MakePacket(1, {30, 70}), nullptr);
  std::optional<GrabResult> first;
  store->Grab(1, 5, domain::Clock::now(), [&](GrabResult r) { first = r; });
  EXPECT_FALSE(first.has_value());
  sink.Fill();
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->code, ErrorCode::kUnavailable);
  std::optional<GrabResult> refused;
  store->Grab(1, 6, domain::Clock::now(), [&](GrabResult r) { refused = r; });
  ASSERT_TRUE(refused.has_value());
  EXPECT_EQ(refused->code, ErrorCode::kUnavailable);
  EXPECT_EQ(refused->message, "the journal's disk is full; retry");
  EXPECT_EQ(sink.events().size(), 1u) << "no share taken while the journal cannot write";
  std::optional<GrabResult> repeat;
  store->Grab(1, 5, domain::Clock::now(), [&](GrabResult r) { repeat = r; });
  ASSERT_TRUE(repeat.has_value());
  EXPECT_EQ(repeat->code, ErrorCode::kUnavailable);

  sink.Free();
  sink.MakeDurable();  // the disk had room again: the first grab is written
  std::optional<GrabResult> retry;
  store->Grab(1, 5, domain::Clock::now(), [&](GrabResult r) { retry = r; });
  ASSERT_TRUE(retry.has_value());
  EXPECT_EQ(retry->code, ErrorCode::kConflict);
  EXPECT_EQ(retry->amount_cents, 30);
  EXPECT_EQ(retry->seq, 1);
  std::optional<GrabResult> later;
  store->Grab(1, 6, domain::Clock::now(), [&](GrabResult r) { later = r; });
  sink.MakeDurable();
  ASSERT_TRUE(later.has_value());
  EXPECT_EQ(later->code, ErrorCode::kOk);
  EXPECT_EQ(later->seq, 2);
  EXPECT_EQ(sink.events().size(), 2u);
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
  EXPECT_TRUE(result.not_held);
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


// --- Sweep through the per-shard index: only what expired or finished is looked at, with the
// contract of the full scan it replaced (store.h). Times are explicit: Sweep is handed its "now".

std::optional<PacketSnapshot> SnapshotOf(PacketStore& store, domain::PacketId id) {
  std::optional<PacketSnapshot> snapshot;
  store.Snapshot(id, [&](std::optional<PacketSnapshot> s) { snapshot = std::move(s); });
  return snapshot;
}

domain::PacketRecord PacketExpiringAt(domain::PacketId id, std::vector<domain::Cents> shares,
                                      domain::TimePoint expires_at) {
  domain::PacketRecord packet = MakePacket(id, std::move(shares));
  packet.created_at = expires_at - std::chrono::hours(1);
  packet.expires_at = expires_at;
  return packet;
}

TEST(MemoryStoreSweep, SuccessiveSweepsRefundExactlyTheExpiredPacketsOnce) {
  FakeSink sink;
  auto store = MakeMemoryStore(sink);
  const auto base = domain::FromUnixMillis(1'800'000'000'000);
  // 300 packets over many shards, expiring in a shuffled order at 1..300 ms after base; every
  // third one has a grab first, so its refund is the rest.
  constexpr int kPackets = 300;
  std::map<domain::PacketId, domain::TimePoint> expiry;
  std::map<domain::PacketId, domain::Cents> grabbed;
  for (int i = 0; i < kPackets; ++i) {
    const domain::PacketId id = 1000 + static_cast<domain::PacketId>(i) * 7;
    expiry[id] = base + std::chrono::milliseconds(1 + (i * 131) % kPackets);
    store->Add(PacketExpiringAt(id, {10, 20, 30}, expiry[id]), nullptr);
    if (i % 3 == 0) {
      store->Grab(id, 5, base, [](GrabResult) {});
      grabbed[id] = 10;
    }
  }
  std::map<domain::PacketId, int> refunds;
  std::size_t events_seen = 0;
  auto previous = base - std::chrono::milliseconds(1);
  // Sweeps at irregular times, each landing on or between expiries, then one repeated.
  for (int at : {0, 1, 2, 2, 17, 18, 100, 150, 151, 299, 300, 300, 400}) {
    const auto now = base + std::chrono::milliseconds(at);
    std::size_t due = 0;
    for (const auto& [id, expires_at] : expiry) due += expires_at > previous && expires_at <= now;
    EXPECT_EQ(store->Sweep(now, 0, std::chrono::milliseconds(0)).closed, due) << "at +" << at;
    const auto events = sink.events();
    for (; events_seen < events.size(); ++events_seen) {
      const LedgerEvent& event = events[events_seen];
      if (event.type != LedgerEvent::Type::kRefund) continue;
      ++refunds[event.packet_id];
      EXPECT_LE(expiry[event.packet_id], now) << "refunded before its expiry";
      EXPECT_EQ(event.amount_cents, 60 - grabbed[event.packet_id]);
    }
    previous = std::max(previous, now);
  }
  EXPECT_EQ(refunds.size(), static_cast<std::size_t>(kPackets));
  for (const auto& [id, count] : refunds) EXPECT_EQ(count, 1) << "packet " << id;
}

TEST(MemoryStoreSweep, PacketEmptiedBeforeItsExpiryIsNotRefunded) {
  FakeSink sink;
  auto store = MakeMemoryStore(sink);
  const auto base = domain::FromUnixMillis(1'800'000'000'000);
  store->Add(PacketExpiringAt(1, {10, 20}, base + std::chrono::seconds(10)), nullptr);
  store->Add(PacketExpiringAt(2, {10, 20}, base + std::chrono::seconds(10)), nullptr);
  store->Grab(1, 5, base, [](GrabResult) {});
  store->Grab(1, 6, base + std::chrono::seconds(9), [](GrabResult) {});  // the last share
  store->Grab(2, 5, base, [](GrabResult) {});
  const SweepStats stats = store->Sweep(base + std::chrono::seconds(10), 0, std::chrono::milliseconds(0));
  EXPECT_EQ(stats.closed, 1u) << "only the packet with a share left";
  int refunds = 0;
  for (const auto& event : sink.events()) {
    if (event.type != LedgerEvent::Type::kRefund) continue;
    ++refunds;
    EXPECT_EQ(event.packet_id, 2);
    EXPECT_EQ(event.amount_cents, 20);
  }
  EXPECT_EQ(refunds, 1);
  EXPECT_EQ(SnapshotOf(*store, 1)->record.status, domain::PacketStatus::kExhausted);
}

TEST(MemoryStoreSweep, FinishedPacketsAreEvictedOnlyOnceAppliedAndPastRetention) {
  FakeSink sink;
  auto store = MakeMemoryStore(sink);
  const auto base = domain::FromUnixMillis(1'800'000'000'000);
  const auto retention = std::chrono::milliseconds(1000);
  // Packet i is emptied by the grab at position i + 1 at base + i ms; a packet that stays open
  // and one recovered half-grabbed are never evicted.
  constexpr int kPackets = 50;
  for (int i = 0; i < kPackets; ++i) {
    store->Add(PacketExpiringAt(100 + i, {7}, base + std::chrono::hours(1)), nullptr);
    store->Grab(100 + i, 9, base + std::chrono::milliseconds(i), [](GrabResult) {});
  }
  store->Add(PacketExpiringAt(1, {1, 2}, base + std::chrono::hours(1)), nullptr);
  sink.MakeDurable();
  EXPECT_EQ(store->size(), static_cast<std::size_t>(kPackets + 1));

  // Applied up to everything but within retention: nothing goes.
  EXPECT_EQ(store->Sweep(base + std::chrono::milliseconds(999), kPackets, retention).evicted, 0u);
  // Past retention for all, applied only up to position 10: packets 100..109.
  EXPECT_EQ(store->Sweep(base + std::chrono::seconds(5), 10, retention).evicted, 10u);
  EXPECT_FALSE(SnapshotOf(*store, 109));
  EXPECT_TRUE(SnapshotOf(*store, 110));
  EXPECT_EQ(store->Sweep(base + std::chrono::seconds(5), 10, retention).evicted, 0u);
  // Applied to 30 but now only 20 of them are past retention (packets 110..119 finished at
  // base + 10..19 ms; now = base + 1019 ms).
  EXPECT_EQ(store->Sweep(base + std::chrono::milliseconds(1019), 30, retention).evicted, 10u);
  EXPECT_TRUE(SnapshotOf(*store, 120));
  // A longer retention on a later sweep holds back what the index already saw as past the old one.
  EXPECT_EQ(store->Sweep(base + std::chrono::milliseconds(1100), 30, std::chrono::seconds(2)).evicted,
            0u);
  EXPECT_EQ(store->Sweep(base + std::chrono::seconds(60), kPackets, retention).evicted,
            static_cast<std::size_t>(kPackets - 20));
  EXPECT_EQ(store->size(), 1u) << "the open packet stays";
  EXPECT_TRUE(SnapshotOf(*store, 1));
}

TEST(MemoryStoreSweep, RefundedPacketIsEvictedOnlyOnceItsRefundIsDurableAndApplied) {
  FakeSink sink;
  auto store = MakeMemoryStore(sink);
  const auto base = domain::FromUnixMillis(1'800'000'000'000);
  store->Add(PacketExpiringAt(1, {10, 20}, base + std::chrono::seconds(1)), nullptr);
  store->Grab(1, 5, base, [](GrabResult) {});  // position 1
  const auto after = base + std::chrono::seconds(2);
  EXPECT_EQ(store->Sweep(after, 1, std::chrono::milliseconds(0)).closed, 1u);  // refund: position 2
  // Not durable yet: kExpired, not finished, whatever the applied position says.
  EXPECT_EQ(store->Sweep(after, 2, std::chrono::milliseconds(0)).evicted, 0u);
  EXPECT_EQ(store->Sweep(after, 2, std::chrono::milliseconds(0)).evicted, 0u);
  sink.MakeDurable();
  EXPECT_EQ(store->Sweep(after, 1, std::chrono::milliseconds(0)).evicted, 0u) << "refund unapplied";
  const SweepStats stats = store->Sweep(after, 2, std::chrono::milliseconds(0));
  EXPECT_EQ(stats.evicted, 1u);
  EXPECT_EQ(stats.closed, 0u);
  EXPECT_EQ(store->size(), 0u);
}

TEST(MemoryStoreSweep, RecoveredFinishedPacketIsEvictedAfterRetentionFromItsLoad) {
  FakeSink sink;
  const auto base = domain::FromUnixMillis(1'800'000'000'000);
  domain::ManualTimeSource clock(base);
  auto store = MakeMemoryStore(sink, clock);
  auto exhausted = PacketExpiringAt(1, {10}, base + std::chrono::hours(1));
  exhausted.grabs.push_back({7, 10, 1, base});
  exhausted.status = domain::PacketStatus::kExhausted;
  store->Add(exhausted, nullptr);
  store->Add(exhausted, nullptr);  // idempotent: indexed once
  auto open = PacketExpiringAt(2, {10}, base - std::chrono::seconds(1));  // recovered past expiry
  store->Add(open, nullptr);
  store->Add(open, nullptr);
  const auto retention = std::chrono::seconds(5);
  SweepStats stats = store->Sweep(base + std::chrono::seconds(4), 0, retention);
  EXPECT_EQ(stats.closed, 1u);
  EXPECT_EQ(stats.evicted, 0u);
  stats = store->Sweep(base + std::chrono::seconds(5), 0, retention);
  EXPECT_EQ(stats.closed, 0u);
  EXPECT_EQ(stats.evicted, 1u);
  EXPECT_FALSE(SnapshotOf(*store, 1));
}

TEST(MemoryStoreSweep, SweepRacingTheLastGrabsRefundsOrEmptiesEachPacketExactlyOnce) {
  FakeSink sink;
  auto store = MakeMemoryStore(sink);
  const auto base = domain::FromUnixMillis(1'800'000'000'000);
  const auto expires_at = base + std::chrono::seconds(1);
  constexpr int kPackets = 2000;
  for (int i = 0; i < kPackets; ++i) {
    store->Add(PacketExpiringAt(i + 1, {1, 2, 3}, expires_at), nullptr);
    store->Grab(i + 1, 1, base, [](GrabResult) {});
    store->Grab(i + 1, 2, base, [](GrabResult) {});
  }
  // Each packet's last share is grabbed just before the expiry while the sweeper closes
  // packets at the expiry: a packet is either emptied (no refund) or refunded 3 cents, never both.
  std::atomic<bool> go{false};
  std::thread grabber([&] {
    while (!go) std::this_thread::yield();
    for (int i = 0; i < kPackets; ++i) {
      store->Grab(i + 1, 3, expires_at - std::chrono::milliseconds(1), [](GrabResult) {});
    }
  });
  std::size_t closed = 0;
  go = true;
  for (int round = 0; round < 50; ++round) closed += store->Sweep(expires_at, 0, std::chrono::hours(1)).closed;
  grabber.join();
  closed += store->Sweep(expires_at, 0, std::chrono::hours(1)).closed;
  std::map<domain::PacketId, domain::Cents> paid;
  std::map<domain::PacketId, int> refunds;
  for (const auto& event : sink.events()) {
    paid[event.packet_id] += event.amount_cents;
    if (event.type != LedgerEvent::Type::kRefund) continue;
    ++refunds[event.packet_id];
    EXPECT_EQ(event.amount_cents, 3) << "a refund of an emptied packet, packet " << event.packet_id;
  }
  EXPECT_EQ(refunds.size(), closed);
  for (const auto& [id, count] : refunds) EXPECT_EQ(count, 1) << "packet " << id;
  for (int i = 0; i < kPackets; ++i) EXPECT_EQ(paid[i + 1], 6) << "packet " << i + 1;
}

}  // namespace
}  // namespace redpacket::store
