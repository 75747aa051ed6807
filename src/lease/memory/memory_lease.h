// Lease in one process, for tests and embedded mode: a mutex and an injectable clock.
// Thread-safe; calls never wait on anything but the mutex.
#pragma once

#include <chrono>
#include <functional>
#include <mutex>
#include <string>

#include "lease/lease.h"

namespace redpacket::lease {

class MemoryLease final : public Lease {
 public:
  using Clock = std::function<std::chrono::steady_clock::time_point()>;

  // `clock` tells the time expiries are measured on (tests pass a fake one).
  explicit MemoryLease(Clock clock = [] { return std::chrono::steady_clock::now(); });

  Result<std::optional<std::uint64_t>> TryAcquire(std::string_view holder,
                                                  std::chrono::milliseconds ttl) override;
  Status Release(std::string_view holder) override;

 private:
  bool HeldAt(std::chrono::steady_clock::time_point now) const;

  const Clock clock_;
  std::mutex mutex_;
  std::string holder_;  // empty: never taken or released
  std::chrono::steady_clock::time_point expires_at_;
  std::uint64_t token_ = 0;  // the last token handed out
};

}  // namespace redpacket::lease
