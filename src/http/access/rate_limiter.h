// Token buckets per caller, the server's own rate limit (docs/API.md: 429 rate_limited,
// Retry-After): each key (a user, or a client address) may make `burst` requests at once and
// `rate_per_s` a second after that. Thread-safe: the buckets are spread over shards, each behind
// its own mutex, held for one hash lookup; callers on different I/O threads rarely meet. Never
// blocks otherwise.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <unordered_map>

namespace redpacket::http {

class RateLimiter {
 public:
  using Clock = std::chrono::steady_clock;
  struct Options {
    std::int64_t rate_per_s = 20;  // tokens added a second; 0 turns the limiter off
    std::int64_t burst = 40;       // the bucket's capacity (at least 1)
  };

  explicit RateLimiter(Options options);

  bool enabled() const { return rate_per_s_ > 0; }
  // Takes one token from `key`'s bucket (a new key starts full). Returns 0 when the request may
  // go ahead, else the whole seconds (>= 1) until a token is back: the Retry-After.
  std::int64_t Acquire(std::uint64_t key, Clock::time_point now);
  // Buckets held now (for the metrics).
  std::size_t bucket_count() const;

 private:
  struct Bucket {
    double tokens;
    Clock::time_point updated;
  };
  struct alignas(64) Shard {
    mutable std::mutex mutex;
    std::unordered_map<std::uint64_t, Bucket> buckets;
    Clock::time_point next_sweep{};
  };
  static constexpr std::size_t kShards = 64;

  void SweepFull(Shard& shard, Clock::time_point now) const;

  double rate_per_s_;
  double burst_;
  Clock::duration refill_time_;  // an empty bucket is full again after this
  std::array<Shard, kShards> shards_;
};

// Keys of the rate limiter and the connection caps. User ids are below 2^53 and are their own
// key; an address key has the top bit set, so the two never meet.
constexpr std::uint64_t UserKey(std::int64_t user_id) {
  return static_cast<std::uint64_t>(user_id);
}

}  // namespace redpacket::http
