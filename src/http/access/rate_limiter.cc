// RateLimiter: sharded token buckets, swept of idle buckets so memory follows the active callers.
#include "http/access/rate_limiter.h"

#include <algorithm>
#include <cmath>

namespace redpacket::http {

RateLimiter::RateLimiter(Options options)
    : rate_per_s_(static_cast<double>(std::max<std::int64_t>(0, options.rate_per_s))),
      burst_(static_cast<double>(std::max<std::int64_t>(1, options.burst))),
      refill_time_(rate_per_s_ > 0 ? std::chrono::duration_cast<Clock::duration>(
                                         std::chrono::duration<double>(burst_ / rate_per_s_))
                                   : Clock::duration::zero()) {}

std::int64_t RateLimiter::Acquire(std::uint64_t key, Clock::time_point now) {
  if (!enabled()) return 0;
  // Keys are user ids and addresses, not uniformly spread: mix before picking the shard.
  const std::uint64_t mixed = (key ^ (key >> 33)) * 0xff51afd7ed558ccdULL;
  Shard& shard = shards_[(mixed >> 58) % kShards];
  std::lock_guard lock(shard.mutex);
  if (now >= shard.next_sweep) SweepFull(shard, now);
  auto [it, inserted] = shard.buckets.try_emplace(key, Bucket{burst_, now});
  Bucket& bucket = it->second;
  if (!inserted) {
    const double elapsed = std::chrono::duration<double>(now - bucket.updated).count();
    if (elapsed > 0) {
      bucket.tokens = std::min(burst_, bucket.tokens + elapsed * rate_per_s_);
      bucket.updated = now;
    }
  }
  if (bucket.tokens >= 1.0) {
    bucket.tokens -= 1.0;
    return 0;
  }
  const double wait_s = (1.0 - bucket.tokens) / rate_per_s_;
  return std::max<std::int64_t>(1, static_cast<std::int64_t>(std::ceil(wait_s)));
}

// A bucket that has refilled to its capacity is the same as no bucket (a new key starts full), so
// dropping it changes no answer. Sweeping each shard once per refill time (at least a second)
// keeps the map to the callers of the last two refill times, at O(1) amortized per request.
void RateLimiter::SweepFull(Shard& shard, Clock::time_point now) const {
  std::erase_if(shard.buckets,
                [&](const auto& entry) { return now - entry.second.updated >= refill_time_; });
  shard.next_sweep = now + std::max<Clock::duration>(refill_time_, std::chrono::seconds(1));
}

std::size_t RateLimiter::bucket_count() const {
  std::size_t count = 0;
  for (const Shard& shard : shards_) {
    std::lock_guard lock(shard.mutex);
    count += shard.buckets.size();
  }
  return count;
}

}  // namespace redpacket::http
