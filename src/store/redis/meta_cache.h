// The per-I/O-thread cache of packets' immutable metadata (sender, total, count, kind, receiver,
// times): a hot packet's grabs skip the Bloom filter lookup and are refused 403 without a round
// trip. Entries live a randomized TTL (base +- jitter) so the entries filled by one stampede do
// not all expire, and refill, in the same instant. Not thread-safe: one instance per I/O thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <unordered_map>

#include "domain/random.h"
#include "store/redis/script_replies.h"

namespace redpacket::store::redis {

class MetaCache {
 public:
  // Monotonic: the cache's own lifetime of an entry, not the packet's (domain) time.
  using Time = std::chrono::steady_clock::time_point;

  // jitter <= ttl; max_entries > 0 (beyond it, expired entries go first, then arbitrary ones).
  MetaCache(std::chrono::milliseconds ttl, std::chrono::milliseconds jitter,
            std::size_t max_entries);

  // nullptr when absent or expired (an expired entry is dropped). Valid until the next Insert.
  const PacketMeta* Find(domain::PacketId packet_id, Time now);
  void Insert(domain::PacketId packet_id, PacketMeta meta, Time now, domain::RandomSource& random);
  // Uniform in [ttl - jitter, ttl + jitter].
  std::chrono::milliseconds DrawTtl(domain::RandomSource& random) const;

  std::size_t size() const { return entries_.size(); }

 private:
  struct Entry {
    PacketMeta meta;
    Time expires_at;
  };
  void MakeRoom(Time now);

  std::chrono::milliseconds ttl_;
  std::chrono::milliseconds jitter_;
  std::size_t max_entries_;
  std::unordered_map<domain::PacketId, Entry> entries_;
};

}  // namespace redpacket::store::redis
