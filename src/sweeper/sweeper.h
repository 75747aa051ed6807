// The sweeper: closes packets past their expiry (their refund recorded with the close) and drops
// finished ones, every `interval`, on a TaskThread of its own. What one sweep does is the mode's
// policy, behind SweepPolicy: embedded, the memory store's sweep; cluster, a sweep fenced by the
// sweeper lease (only its holder sweeps). Thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>

#include "domain/clock.h"
#include "store/store.h"
#include "threads/task_thread.h"

namespace redpacket::sweeper {

class SweepPolicy {
 public:
  virtual ~SweepPolicy() = default;
  // One sweep at `now`; nullopt when this server did not sweep (another holds the lease).
  // Blocking; called from the sweeper's thread only.
  virtual std::optional<store::SweepStats> SweepOnce(domain::TimePoint now) = 0;
};

struct SweeperOptions {
  std::chrono::milliseconds interval{1000};
};

class Sweeper {
 public:
  // `policy` and `clock` must outlive the sweeper.
  Sweeper(SweepPolicy& policy, const domain::TimeSource& clock, SweeperOptions options = {});

  void Start() { thread_.Start(); }
  // Blocking: a sweep under way ends, the thread joins.
  void Stop() { thread_.Stop(); }
  // Blocking: returns once a sweep that began after this call has ended (tests that move a
  // manual clock past an expiry).
  void SweepNow() { thread_.TickNow(); }

  std::uint64_t expired() const { return expired_.load(std::memory_order_relaxed); }
  std::uint64_t evicted() const { return evicted_.load(std::memory_order_relaxed); }

 private:
  void SweepOnce();

  SweepPolicy& policy_;
  const domain::TimeSource& clock_;
  std::atomic<std::uint64_t> expired_{0};
  std::atomic<std::uint64_t> evicted_{0};
  threads::TaskThread thread_;  // last: it stops before the rest goes
};

}  // namespace redpacket::sweeper
