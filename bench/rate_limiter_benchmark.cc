// The rate limit's cost on the hot path: one RateLimiter::Acquire per request, with one caller
// (one shard, every thread on one mutex: the worst case) and with many callers spread over the
// shards, from 1 and 2 threads.
#include <benchmark/benchmark.h>

#include "http/access/rate_limiter.h"

namespace redpacket::http {
namespace {

RateLimiter& Limiter() {
  static RateLimiter limiter({.rate_per_s = 1'000'000'000, .burst = 1'000'000'000});
  return limiter;
}

void BM_AcquireOneCaller(benchmark::State& state) {
  for (auto _ : state) {
    benchmark::DoNotOptimize(Limiter().Acquire(UserKey(7), RateLimiter::Clock::now()));
  }
}
BENCHMARK(BM_AcquireOneCaller)->Threads(1)->Threads(2);

void BM_AcquireManyCallers(benchmark::State& state) {
  std::uint64_t user = 1 + static_cast<std::uint64_t>(state.thread_index()) * 1'000'000;
  for (auto _ : state) {
    benchmark::DoNotOptimize(
        Limiter().Acquire(UserKey(static_cast<std::int64_t>(user)), RateLimiter::Clock::now()));
    if (++user % 100'000 == 0) user -= 100'000;  // 100,000 callers a thread
  }
}
BENCHMARK(BM_AcquireManyCallers)->Threads(1)->Threads(2);

}  // namespace
}  // namespace redpacket::http
