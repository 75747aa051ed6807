// PendingCredits: a per-user sum, the unapplied events in order, and the last removed batch.
#include "service/pending_credits.h"

namespace redpacket::service {

void PendingCredits::Reset(std::uint64_t applied_position) {
  std::lock_guard lock(mutex_);
  cents_.clear();
  unapplied_.clear();
  removed_.clear();
  applied_ = removed_after_ = applied_position;
}

void PendingCredits::Add(std::span<const PendingEvent> events) {
  std::lock_guard lock(mutex_);
  for (const PendingEvent& event : events) {
    cents_[event.user_id] += event.amount_cents;
    unapplied_.push_back(event);
  }
}

void PendingCredits::Remove(std::uint64_t applied_position) {
  std::lock_guard lock(mutex_);
  if (applied_position <= applied_) return;
  removed_.clear();
  while (!unapplied_.empty() && unapplied_.front().position <= applied_position) {
    const PendingEvent& event = unapplied_.front();
    if (auto it = cents_.find(event.user_id);
        it != cents_.end() && (it->second -= event.amount_cents) == 0) {
      cents_.erase(it);
    }
    removed_.push_back(event);
    unapplied_.pop_front();
  }
  removed_after_ = applied_;
  applied_ = applied_position;
}

std::optional<domain::Cents> PendingCredits::Beyond(domain::UserId user_id,
                                                    std::uint64_t snapshot_position) const {
  std::lock_guard lock(mutex_);
  const auto found = cents_.find(user_id);
  domain::Cents cents = found == cents_.end() ? 0 : found->second;
  if (snapshot_position >= applied_) {
    // The snapshot already holds a commit whose Remove has not run yet: those events are in
    // the balance, not pending.
    for (const PendingEvent& event : unapplied_) {
      if (event.position > snapshot_position) break;
      if (event.user_id == user_id) cents -= event.amount_cents;
    }
    return cents;
  }
  if (snapshot_position >= removed_after_) {
    // The snapshot predates the last commit: its events are pending for this read.
    for (const PendingEvent& event : removed_) {
      if (event.position > snapshot_position && event.user_id == user_id) cents += event.amount_cents;
    }
    return cents;
  }
  return std::nullopt;
}

}  // namespace redpacket::service
