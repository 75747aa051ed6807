// MemoryLease: the lease's rules on a mutex, the reference the Redis scripts must match.
#include "lease/memory/memory_lease.h"

#include <utility>

namespace redpacket::lease {

MemoryLease::MemoryLease(Clock clock) : clock_(std::move(clock)) {}

bool MemoryLease::HeldAt(std::chrono::steady_clock::time_point now) const {
  return !holder_.empty() && now < expires_at_;
}

Result<std::optional<std::uint64_t>> MemoryLease::TryAcquire(std::string_view holder,
                                                             std::chrono::milliseconds ttl) {
  if (holder.empty()) return domain::MakeError(domain::ErrorCode::kBadRequest, "empty holder");
  if (ttl <= std::chrono::milliseconds::zero()) {
    return domain::MakeError(domain::ErrorCode::kBadRequest, "lease ttl must be positive");
  }
  std::lock_guard lock(mutex_);
  const auto now = clock_();
  if (HeldAt(now) && holder_ != holder) return std::optional<std::uint64_t>{};
  // A new holder (or the same one after its lease lapsed) gets a new token: a lapsed holder may
  // have been replaced and back in between, so its old token must not be valid again.
  if (!HeldAt(now)) {
    ++token_;
    holder_ = holder;
  }
  expires_at_ = now + ttl;
  return std::optional<std::uint64_t>{token_};
}

Status MemoryLease::Release(std::string_view holder) {
  if (holder.empty()) return domain::MakeError(domain::ErrorCode::kBadRequest, "empty holder");
  std::lock_guard lock(mutex_);
  if (!HeldAt(clock_())) return {};
  if (holder_ != holder) {
    return domain::MakeError(domain::ErrorCode::kConflict, "the lease is held by another holder");
  }
  holder_.clear();
  return {};
}

}  // namespace redpacket::lease
