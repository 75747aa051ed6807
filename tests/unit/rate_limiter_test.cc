// RateLimiter: burst then rate, Retry-After, callers apart, off at rate 0, idle buckets dropped.
// Time is passed in: no test sleeps.
#include "http/access/rate_limiter.h"

#include <gtest/gtest.h>

namespace redpacket::http {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
const RateLimiter::Clock::time_point kStart{seconds(1000)};

TEST(RateLimiter, AllowsTheBurstThenTheRate) {
  RateLimiter limiter({.rate_per_s = 20, .burst = 40});
  for (int i = 0; i < 40; ++i) ASSERT_EQ(limiter.Acquire(UserKey(7), kStart), 0) << i;
  EXPECT_EQ(limiter.Acquire(UserKey(7), kStart), 1);  // 1/20 s to the next token: at least 1 s
  // 20 a second after the burst: 100 ms give two tokens, not three.
  EXPECT_EQ(limiter.Acquire(UserKey(7), kStart + milliseconds(100)), 0);
  EXPECT_EQ(limiter.Acquire(UserKey(7), kStart + milliseconds(100)), 0);
  EXPECT_EQ(limiter.Acquire(UserKey(7), kStart + milliseconds(100)), 1);
}

TEST(RateLimiter, RetryAfterIsTheWholeSecondsToTheNextToken) {
  RateLimiter limiter({.rate_per_s = 1, .burst = 1});
  EXPECT_EQ(limiter.Acquire(1, kStart), 0);
  EXPECT_EQ(limiter.Acquire(1, kStart), 1);
  RateLimiter slow({.rate_per_s = 1, .burst = 3});
  for (int i = 0; i < 3; ++i) ASSERT_EQ(slow.Acquire(1, kStart), 0);
  EXPECT_EQ(slow.Acquire(1, kStart + milliseconds(500)), 1);
  EXPECT_EQ(slow.Acquire(1, kStart + milliseconds(1000)), 0);
}

TEST(RateLimiter, OneCallerDoesNotSpendAnothersTokens) {
  RateLimiter limiter({.rate_per_s = 5, .burst = 5});
  for (int i = 0; i < 100; ++i) limiter.Acquire(UserKey(1), kStart);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(limiter.Acquire(UserKey(2), kStart), 0) << i;
  // An address key never meets a user key.
  EXPECT_EQ(limiter.Acquire((std::uint64_t{1} << 63) | 1, kStart), 0);
}

TEST(RateLimiter, RateZeroIsOff) {
  RateLimiter limiter({.rate_per_s = 0, .burst = 1});
  EXPECT_FALSE(limiter.enabled());
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(limiter.Acquire(1, kStart), 0);
  EXPECT_EQ(limiter.bucket_count(), 0u);
}

TEST(RateLimiter, IdleBucketsAreDroppedAndAnswersStayTheSame) {
  RateLimiter limiter({.rate_per_s = 20, .burst = 40});  // full again 2 s after the last use
  for (std::uint64_t user = 1; user <= 10000; ++user) limiter.Acquire(UserKey(user), kStart);
  EXPECT_EQ(limiter.bucket_count(), 10000u);
  // Much later every shard is swept on its next use; 6,400 new callers reach every shard.
  const auto later = kStart + seconds(10);
  for (std::uint64_t user = 20001; user <= 26400; ++user) limiter.Acquire(UserKey(user), later);
  EXPECT_EQ(limiter.bucket_count(), 6400u);
  // A dropped bucket was full: its caller has the whole burst again.
  for (int i = 0; i < 40; ++i) ASSERT_EQ(limiter.Acquire(UserKey(1), later), 0) << i;
  EXPECT_EQ(limiter.Acquire(UserKey(1), later), 1);
}

TEST(RateLimiter, ABusyCallerKeepsItsBucketThroughSweeps) {
  RateLimiter limiter({.rate_per_s = 1, .burst = 2});
  EXPECT_EQ(limiter.Acquire(1, kStart), 0);
  EXPECT_EQ(limiter.Acquire(1, kStart), 0);
  // 1.5 s later: 1.5 tokens back, not yet full, so a sweep keeps it (1 left after this call).
  EXPECT_EQ(limiter.Acquire(1, kStart + milliseconds(1500)), 0);
  EXPECT_EQ(limiter.Acquire(1, kStart + milliseconds(1500)), 1);
}

}  // namespace
}  // namespace redpacket::http
