// JournalSource: the embedded bus's consumer side.
#include "bus/local/journal_source.h"

#include <algorithm>

namespace redpacket::bus {

JournalSource::JournalSource(Journal& journal) : journal_(journal) {}

void JournalSource::Push(std::span<const PositionedEvent> events) {
  if (events.empty()) return;
  {
    std::lock_guard lock(mutex_);
    queue_.insert(queue_.end(), events.begin(), events.end());
  }
  ready_.notify_one();
}

void JournalSource::Close() {
  {
    std::lock_guard lock(mutex_);
    closed_ = true;
  }
  ready_.notify_all();
}

domain::Result<std::vector<ConsumedMessage>> JournalSource::Poll(std::size_t max_messages,
                                                                 std::chrono::milliseconds wait) {
  std::unique_lock lock(mutex_);
  ready_.wait_for(lock, wait, [this] { return !queue_.empty() || closed_; });
  std::vector<ConsumedMessage> messages;
  const std::size_t count = std::min(max_messages, queue_.size());
  messages.reserve(count);
  for (std::size_t i = 0; i < count; ++i) {
    PositionedEvent& positioned = queue_.front();
    messages.push_back(ConsumedMessage{.partition = 0,
                                       .offset = positioned.position,
                                       .event = positioned.event,
                                       .decode_error = {},
                                       .payload = {}});
    queue_.pop_front();
  }
  return messages;
}

domain::Status JournalSource::Commit(const PartitionOffsets& applied) {
  if (auto it = applied.find(0); it != applied.end()) journal_.ReleaseUpTo(it->second);
  return {};
}

domain::Status JournalSource::DeadLetter(const ConsumedMessage& message,
                                         const std::string& reason) {
  // The ledger holds it, whole (dead_letters): a second copy on the same disks adds nothing.
  (void)message;
  (void)reason;
  return {};
}

std::optional<std::uint64_t> JournalSource::Lag() {
  std::lock_guard lock(mutex_);
  return queue_.size();
}

}  // namespace redpacket::bus
