// The sweeper: its policy is handed the clock's "now", what a sweep closed and evicted is counted,
// a sweep the policy skipped (another server holds the lease) counts nothing, SweepNow() returns
// once a sweep has run, and Stop() ends it.
#include "sweeper/sweeper.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <vector>

namespace redpacket::sweeper {
namespace {

using namespace std::chrono_literals;

class ScriptedPolicy final : public SweepPolicy {
 public:
  std::optional<store::SweepStats> SweepOnce(domain::TimePoint now) override {
    std::lock_guard lock(mutex_);
    seen.push_back(now);
    if (skip) return std::nullopt;
    store::SweepStats stats;
    stats.closed = 2;
    stats.evicted = 3;
    return stats;
  }
  std::mutex mutex_;
  std::vector<domain::TimePoint> seen;
  bool skip = false;
};

TEST(SweeperTest, SweepsAtTheClocksNowAndCountsWhatItDid) {
  domain::ManualTimeSource clock(domain::FromUnixMillis(1'900'000'000'000));
  ScriptedPolicy policy;
  Sweeper sweeper(policy, clock, SweeperOptions{std::chrono::hours(24)});
  sweeper.Start();
  sweeper.SweepNow();  // the first sweep, due at start, has run by now
  const std::uint64_t expired = sweeper.expired();
  EXPECT_GE(expired, 2u);
  clock.Advance(std::chrono::hours(1));
  sweeper.SweepNow();
  EXPECT_EQ(sweeper.expired(), expired + 2);
  EXPECT_EQ(sweeper.evicted() * 2, sweeper.expired() * 3) << "3 evicted for each 2 closed";
  {
    std::lock_guard lock(policy.mutex_);
    ASSERT_FALSE(policy.seen.empty());
    EXPECT_EQ(policy.seen.back(),
              domain::FromUnixMillis(1'900'000'000'000) + std::chrono::hours(1));
  }
  {
    std::lock_guard lock(policy.mutex_);
    policy.skip = true;
  }
  sweeper.SweepNow();
  EXPECT_EQ(sweeper.expired(), expired + 2) << "a skipped sweep counts nothing";
  sweeper.Stop();
  sweeper.SweepNow();  // returns at once once stopped
}

}  // namespace
}  // namespace redpacket::sweeper
