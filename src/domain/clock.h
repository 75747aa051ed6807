// "Now" as the service decides with it (expiry, creation times, eviction): an interface, so that
// tests move time by hand instead of sleeping. Thread-safe: Now() from any thread, never blocks.
// (Named TimeSource because domain::Clock already names the std::chrono clock, see types.h.)
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

#include "domain/types.h"

namespace redpacket::domain {

class TimeSource {
 public:
  virtual ~TimeSource() = default;
  virtual TimePoint Now() const = 0;
};

// The system's wall clock (std::chrono::system_clock).
class SystemTimeSource final : public TimeSource {
 public:
  TimePoint Now() const override { return Clock::now(); }
};

// The process's one SystemTimeSource, for what is not handed a TimeSource.
const TimeSource& SystemTime();

// Time that moves only when told to (tests). Millisecond resolution, like every stored time.
class ManualTimeSource final : public TimeSource {
 public:
  explicit ManualTimeSource(TimePoint start) : millis_(ToUnixMillis(start)) {}
  TimePoint Now() const override { return FromUnixMillis(millis_.load(std::memory_order_acquire)); }
  void Advance(std::chrono::milliseconds by) {
    millis_.fetch_add(by.count(), std::memory_order_acq_rel);
  }
  void Set(TimePoint to) { millis_.store(ToUnixMillis(to), std::memory_order_release); }

 private:
  std::atomic<std::int64_t> millis_;
};

}  // namespace redpacket::domain
