// The embedded store's per-shard sweep index (see sweep_index.h).
#include "store/memory/sweep_index.h"

namespace redpacket::store {

void SweepIndex::AddOpen(domain::PacketId packet_id, domain::TimePoint expires_at) {
  std::lock_guard lock(mutex_);
  open_by_expiry_.emplace(expires_at, packet_id);
}

void SweepIndex::AddFinished(const FinishedPacket& packet) {
  std::lock_guard lock(mutex_);
  retained_.push(packet);
}

void SweepIndex::AddFinished(const FinishedPacket& packet, domain::TimePoint expires_at) {
  std::lock_guard lock(mutex_);
  open_by_expiry_.erase({expires_at, packet.packet_id});
  retained_.push(packet);
}

std::vector<domain::PacketId> SweepIndex::TakeExpired(domain::TimePoint now) {
  std::vector<domain::PacketId> expired;
  std::lock_guard lock(mutex_);
  auto it = open_by_expiry_.begin();
  for (; it != open_by_expiry_.end() && it->first <= now; ++it) expired.push_back(it->second);
  open_by_expiry_.erase(open_by_expiry_.begin(), it);
  return expired;
}

std::vector<SweepIndex::FinishedPacket> SweepIndex::TakeEvictable(
    domain::TimePoint now, std::uint64_t applied_position, std::chrono::milliseconds retention) {
  std::vector<FinishedPacket> evictable;
  std::lock_guard lock(mutex_);
  // Two stages because neither key orders the other: past retention first, then applied.
  while (!retained_.empty() && now - retained_.top().finished_at >= retention) {
    unapplied_.push(retained_.top());
    retained_.pop();
  }
  while (!unapplied_.empty() && unapplied_.top().last_position <= applied_position) {
    evictable.push_back(unapplied_.top());
    unapplied_.pop();
  }
  return evictable;
}

std::size_t SweepIndex::open_size() const {
  std::lock_guard lock(mutex_);
  return open_by_expiry_.size();
}

std::size_t SweepIndex::finished_size() const {
  std::lock_guard lock(mutex_);
  return retained_.size() + unapplied_.size();
}

}  // namespace redpacket::store
