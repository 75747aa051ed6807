// Sweeper: the policy's sweep, on a clock, with what it did logged and counted.
#include "sweeper/sweeper.h"

#include <spdlog/spdlog.h>

namespace redpacket::sweeper {

Sweeper::Sweeper(SweepPolicy& policy, const domain::TimeSource& clock, SweeperOptions options)
    : policy_(policy),
      clock_(clock),
      thread_({.name = "rp-sweeper", .period = options.interval}, [this] { SweepOnce(); }) {}

void Sweeper::SweepOnce() {
  const std::optional<store::SweepStats> swept = policy_.SweepOnce(clock_.Now());
  if (!swept) return;
  expired_.fetch_add(swept->closed, std::memory_order_relaxed);
  evicted_.fetch_add(swept->evicted, std::memory_order_relaxed);
  if (swept->closed || swept->evicted) {
    spdlog::info("sweeper: {} packets expired, {} finished packets evicted", swept->closed,
                 swept->evicted);
  }
}

}  // namespace redpacket::sweeper
