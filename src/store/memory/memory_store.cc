// The embedded engine's packet table and grab decision (see memory_store.h).
#include "store/memory/memory_store.h"

#include <array>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <unordered_map>

#include "domain/grab_rules.h"
#include "store/memory/sweep_index.h"

namespace redpacket::store {
namespace {

using domain::LedgerEvent;
using domain::PacketStatus;

struct GrabEntry {
  domain::Grab grab;
  std::uint64_t position = 0;  // where the grab sits in the event sink
};

struct Entry {
  std::mutex mutex;
  domain::PacketRecord record;                        // record.grabs is not used here: see grabs
  std::vector<GrabEntry> grabs;                       // in seq order
  std::unordered_map<UserId, std::uint32_t> by_user;  // user -> index in grabs
  Cents grabbed_cents = 0;
  std::uint64_t last_position = 0;  // the packet's last event in the sink
  TimePoint finished_at{};          // when it became exhausted or refunded (for eviction)
};

class MemoryStore final : public PacketStore {
 public:
  MemoryStore(bus::EventSink& sink, const domain::TimeSource& clock) : sink_(sink), clock_(clock) {}

  void Add(const domain::PacketRecord& packet, StatusCallback done) override {
    AddNow(packet);
    if (done) done({});
  }

  void AddNow(const domain::PacketRecord& packet) {
    auto entry = std::make_shared<Entry>();
    entry->record = packet;
    entry->record.grabs.clear();
    entry->grabs.reserve(static_cast<std::size_t>(packet.spec.count));
    // Sized for every share up front: rehashing a million-user table would stall the grab that
    // triggers it (and everyone behind the packet's lock) for a hundred milliseconds.
    entry->by_user.reserve(static_cast<std::size_t>(packet.spec.count));
    for (const auto& grab : packet.grabs) {
      entry->by_user.emplace(grab.user_id, static_cast<std::uint32_t>(entry->grabs.size()));
      entry->grabs.push_back({grab, 0});
      entry->grabbed_cents += grab.amount_cents;
    }
    const bool finished =
        packet.status == PacketStatus::kExhausted || packet.status == PacketStatus::kRefunded;
    if (finished) entry->finished_at = clock_.Now();
    Shard& shard = ShardOf(packet.packet_id);
    std::unique_lock lock(shard.mutex);
    if (!shard.packets.try_emplace(packet.packet_id, entry).second) return;  // already held
    // Indexed only when it is new (Add is idempotent): an open packet by its expiry, a finished
    // one for eviction. (A recovered kExpired one is in neither, as the full scan never touched
    // it either: the ledger refunds it.)
    if (packet.status == PacketStatus::kOpen) {
      shard.sweep_index.AddOpen(packet.packet_id, packet.expires_at);
    } else if (finished) {
      shard.sweep_index.AddFinished({packet.packet_id, entry->finished_at, entry->last_position});
    }
  }

  void Grab(PacketId packet_id, UserId user_id, TimePoint now, GrabCallback done) override {
    std::shared_ptr<Entry> entry = Find(packet_id);
    if (!entry) return done(GrabResult::NotHeld());
    std::unique_lock lock(entry->mutex);
    const domain::PacketRecord& record = entry->record;
    const auto count = record.spec.count;
    const auto first_grab = entry->by_user.find(user_id);
    const auto taken = static_cast<std::int64_t>(entry->grabs.size());
    const domain::GrabDecision decision =
        domain::DecideGrab({record.spec.receiver_id, first_grab != entry->by_user.end(),
                            record.status, record.expires_at, taken, count},
                           user_id, now);
    if (decision == domain::GrabDecision::kAlreadyGrabbed) {
      // The 409 carries the first amount, so it too waits until that grab is durable.
      const GrabEntry& first = entry->grabs[first_grab->second];
      GrabResult result = GrabResult::Refused(decision);
      result.amount_cents = first.grab.amount_cents;
      result.seq = first.grab.seq;
      result.remaining_count = count - static_cast<std::int64_t>(entry->grabs.size());
      const std::uint64_t first_position = first.position;
      lock.unlock();
      // One of the two runs: the 409 once the first grab is durable, or a 503 if the journal's
      // disk is full before it is.
      auto shared_done = std::make_shared<GrabCallback>(std::move(done));
      sink_.WhenDurableOrFail(
          first_position,
          [shared_done, result = std::move(result)]() mutable {
            (*shared_done)(std::move(result));
          },
          [shared_done](domain::Error error) {
            (*shared_done)(GrabResult::Failed(std::move(error)));
          });
      return;
    }
    if (decision != domain::GrabDecision::kTake) return done(GrabResult::Refused(decision));
    // Nothing is decided that could not be written: while the journal's disk is full, a new
    // grab is refused (503) before it takes a share.
    if (domain::Status accepting = sink_.Accepting(); !accepting.ok()) {
      return done(GrabResult::Failed(accepting.error()));
    }
    // No oversell (invariant 1, docs/invariants.md): the seq-th grab takes shares[seq - 1]
    // (taken < count here).

    GrabEntry grab_entry;
    grab_entry.grab = {user_id, record.shares[static_cast<std::size_t>(taken)], taken + 1, now};
    const LedgerEvent event = LedgerEvent::Grab(packet_id, user_id, grab_entry.grab.amount_cents,
                                                grab_entry.grab.seq, domain::ToUnixMillis(now));

    GrabResult result;
    result.amount_cents = event.amount_cents;
    result.seq = event.seq;
    result.remaining_count = count - event.seq;
    // Appended under the packet's lock: a later refund of this packet is durable only after it.
    // If the disk fills before it is durable, the client hears 503: the share stays taken (the
    // event is written once there is room, and credited), and a retry answers 409 with it.
    auto shared_done = std::make_shared<GrabCallback>(std::move(done));
    grab_entry.position = sink_.AppendOrFail(
        event, [shared_done, result]() mutable { (*shared_done)(std::move(result)); },
        [shared_done](domain::Error error) {
          (*shared_done)(GrabResult::Failed(std::move(error)));
        });
    entry->last_position = grab_entry.position;
    entry->by_user.emplace(user_id, static_cast<std::uint32_t>(entry->grabs.size()));
    entry->grabs.push_back(grab_entry);
    entry->grabbed_cents += event.amount_cents;
    if (event.seq == count) {
      entry->record.status = PacketStatus::kExhausted;
      entry->finished_at = now;
      // The one index update a grab makes, and only the last one: the packet leaves the open
      // packets (no refund) and waits for eviction.
      ShardOf(packet_id).sweep_index.AddFinished({packet_id, now, entry->last_position},
                                                 record.expires_at);
    }
  }

  void Snapshot(PacketId packet_id, SnapshotCallback done) override {
    done(SnapshotNow(packet_id));
  }

  std::optional<PacketSnapshot> SnapshotNow(PacketId packet_id) {
    std::shared_ptr<Entry> entry = Find(packet_id);
    if (!entry) return std::nullopt;
    std::lock_guard lock(entry->mutex);
    PacketSnapshot snapshot;
    snapshot.record.packet_id = entry->record.packet_id;
    snapshot.record.spec = entry->record.spec;
    snapshot.record.created_at = entry->record.created_at;
    snapshot.record.expires_at = entry->record.expires_at;
    snapshot.record.status = entry->record.status;
    snapshot.record.refund_cents = entry->record.refund_cents;
    snapshot.record.grabs.reserve(entry->grabs.size());
    for (const auto& grab : entry->grabs) snapshot.record.grabs.push_back(grab.grab);
    snapshot.remaining_count =
        entry->record.spec.count - static_cast<std::int64_t>(entry->grabs.size());
    snapshot.remaining_cents = entry->record.spec.total_cents - entry->grabbed_cents;
    // An open packet past its expiry is expired even before the sweeper gets to it.
    if (snapshot.record.status == PacketStatus::kOpen &&
        clock_.Now() >= snapshot.record.expires_at) {
      snapshot.record.status = PacketStatus::kExpired;
    }
    return snapshot;
  }

  void CountGrabs(PacketId packet_id, CountCallback done) override {
    std::shared_ptr<Entry> entry = Find(packet_id);
    if (!entry) return done(std::optional<std::int64_t>());
    std::int64_t count;
    {
      std::lock_guard lock(entry->mutex);
      count = static_cast<std::int64_t>(entry->grabs.size());
    }
    done(std::optional<std::int64_t>(count));
  }

  // Looks only at what the shard's index says expired or may be evicted; each is re-checked under
  // its packet's lock with the conditions of the contract, so the index can only make a packet
  // wait for a later sweep if an entry is wrong, never refund twice or evict early.
  SweepStats Sweep(TimePoint now, std::uint64_t applied_position,
                   std::chrono::milliseconds retention) override {
    SweepStats stats;
    for (Shard& shard : shards_) {
      stats.evicted += EvictFinished(shard, now, applied_position, retention);
      stats.closed += CloseExpired(shard, now);
    }
    return stats;
  }

  std::size_t size() const override {
    std::size_t total = 0;
    for (const Shard& shard : shards_) {
      std::shared_lock lock(shard.mutex);
      total += shard.packets.size();
    }
    return total;
  }

 private:
  static constexpr std::size_t kShards = 64;
  struct Shard {
    mutable std::shared_mutex mutex;
    std::unordered_map<PacketId, std::shared_ptr<Entry>> packets;
    SweepIndex sweep_index;  // lock order: an entry's mutex, then the index's
  };

  Shard& ShardOf(PacketId packet_id) {
    return shards_[static_cast<std::uint64_t>(packet_id) % kShards];
  }

  std::shared_ptr<Entry> Find(PacketId packet_id) { return FindIn(ShardOf(packet_id), packet_id); }

  static std::shared_ptr<Entry> FindIn(Shard& shard, PacketId packet_id) {
    std::shared_lock lock(shard.mutex);
    auto it = shard.packets.find(packet_id);
    return it == shard.packets.end() ? nullptr : it->second;
  }

  std::size_t CloseExpired(Shard& shard, TimePoint now) {
    std::size_t closed = 0;
    for (PacketId packet_id : shard.sweep_index.TakeExpired(now)) {
      std::shared_ptr<Entry> entry = FindIn(shard, packet_id);
      if (!entry) continue;
      std::lock_guard lock(entry->mutex);
      // Emptied meanwhile (its index entry was taken just before the last grab removed it): no
      // refund. Past its expiry by its own record, not only by the index.
      if (entry->record.status != PacketStatus::kOpen || now < entry->record.expires_at) continue;
      Close(entry, now);
      ++closed;
      // Evictable once the refund is durable (status kRefunded, checked at eviction) and applied.
      shard.sweep_index.AddFinished({packet_id, now, entry->last_position});
    }
    return closed;
  }

  std::size_t EvictFinished(Shard& shard, TimePoint now, std::uint64_t applied_position,
                            std::chrono::milliseconds retention) {
    std::vector<PacketId> evict;
    for (const SweepIndex::FinishedPacket& candidate :
         shard.sweep_index.TakeEvictable(now, applied_position, retention)) {
      std::shared_ptr<Entry> entry = FindIn(shard, candidate.packet_id);
      if (!entry) continue;
      std::lock_guard lock(entry->mutex);
      const bool finished = entry->record.status == PacketStatus::kExhausted ||
                            entry->record.status == PacketStatus::kRefunded;
      if (finished && entry->last_position <= applied_position &&
          now - entry->finished_at >= retention) {
        evict.push_back(candidate.packet_id);
      } else {
        // Not yet: its refund is not durable, or a later sweep runs with a longer retention.
        shard.sweep_index.AddFinished(candidate);
      }
    }
    if (evict.empty()) return 0;
    std::size_t evicted = 0;
    std::unique_lock lock(shard.mutex);
    for (PacketId packet_id : evict) evicted += shard.packets.erase(packet_id);
    return evicted;
  }

  // Expiry: no grab is accepted any more; what is left goes back to the sender exactly once
  // (the refund is unique by packet in the ledger). Called with the entry's lock held.
  void Close(const std::shared_ptr<Entry>& shared_entry, TimePoint now) {
    Entry& entry = *shared_entry;
    entry.record.status = PacketStatus::kExpired;
    const Cents remaining = entry.record.spec.total_cents - entry.grabbed_cents;
    const LedgerEvent event = LedgerEvent::Refund(
        entry.record.packet_id, entry.record.spec.sender_id, remaining, domain::ToUnixMillis(now));
    entry.last_position = sink_.Append(event, [shared_entry, remaining, now] {
      std::lock_guard lock(shared_entry->mutex);
      shared_entry->record.status = PacketStatus::kRefunded;
      shared_entry->record.refund_cents = remaining;
      shared_entry->finished_at = now;
    });
  }

  bus::EventSink& sink_;
  const domain::TimeSource& clock_;
  std::array<Shard, kShards> shards_;
};

}  // namespace

std::unique_ptr<PacketStore> MakeMemoryStore(bus::EventSink& sink,
                                             const domain::TimeSource& clock) {
  return std::make_unique<MemoryStore>(sink, clock);
}

}  // namespace redpacket::store
