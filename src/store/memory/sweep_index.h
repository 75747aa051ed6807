// What a sweep of one shard of the embedded store has to look at, so that a sweep costs what it
// does (packets expiring or evicted), not the packets held: open packets ordered by expiry, and
// finished packets ordered by finish time, then by the journal position the ledger must reach.
// Thread-safe (one mutex per index); never blocks on I/O. Holds ids only: the store re-checks
// each packet under its own lock, so an index entry is a hint to look, never a decision.
#pragma once

#include <cstdint>
#include <mutex>
#include <queue>
#include <set>
#include <utility>
#include <vector>

#include "domain/packet.h"

namespace redpacket::store {

class SweepIndex {
 public:
  struct FinishedPacket {
    domain::PacketId packet_id = 0;
    domain::TimePoint finished_at{};
    std::uint64_t last_position = 0;  // its last event in the sink: the ledger must apply it
  };

  // An open packet (created or recovered).
  void AddOpen(domain::PacketId packet_id, domain::TimePoint expires_at);
  // A packet that became finished (exhausted or refunded) with its eviction keys; `expires_at`
  // given: it is taken out of the open packets too (a packet emptied before its expiry).
  void AddFinished(const FinishedPacket& packet);
  void AddFinished(const FinishedPacket& packet, domain::TimePoint expires_at);

  // Removes and returns the open packets whose expiry is <= now.
  std::vector<domain::PacketId> TakeExpired(domain::TimePoint now);
  // Removes and returns the finished packets that finished at least `retention` before now and
  // whose last position is <= applied_position. One the caller does not evict after all goes back
  // through AddFinished.
  std::vector<FinishedPacket> TakeEvictable(domain::TimePoint now, std::uint64_t applied_position,
                                            std::chrono::milliseconds retention);

  std::size_t open_size() const;
  std::size_t finished_size() const;

 private:
  struct FinishesLater {
    bool operator()(const FinishedPacket& a, const FinishedPacket& b) const {
      return a.finished_at > b.finished_at;
    }
  };
  struct HigherPosition {
    bool operator()(const FinishedPacket& a, const FinishedPacket& b) const {
      return a.last_position > b.last_position;
    }
  };

  mutable std::mutex mutex_;
  // A set, not a heap: a packet emptied before its expiry leaves at once, so the index holds no
  // more than the open packets (a lazily skipped heap entry would live until the expiry, hours
  // after the packet itself was evicted).
  std::set<std::pair<domain::TimePoint, domain::PacketId>> open_by_expiry_;
  // Finished, within their retention: min-heap by finish time.
  std::priority_queue<FinishedPacket, std::vector<FinishedPacket>, FinishesLater> retained_;
  // Past their retention, waiting for the ledger to apply their last event: min-heap by position.
  std::priority_queue<FinishedPacket, std::vector<FinishedPacket>, HigherPosition> unapplied_;
};

}  // namespace redpacket::store
