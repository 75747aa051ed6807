// JournalSource: the embedded bus's consumer side.
#include "bus/local/journal_source.h"

#include <fcntl.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <cerrno>
#include <cstring>

namespace redpacket::bus {

using domain::ErrorCode;
using domain::MakeError;

JournalSource::JournalSource(Journal& journal, std::filesystem::path dead_letter_file)
    : journal_(journal), dead_letter_file_(std::move(dead_letter_file)) {}

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
  boost::json::object record;
  record["reason"] = reason;
  record["partition"] = message.partition;
  record["offset"] = message.offset;
  if (message.event) {
    const domain::LedgerEvent& event = *message.event;
    record["event_id"] = event.EventId();
    record["type"] = event.type == domain::LedgerEvent::Type::kGrab ? "grab" : "refund";
    record["packet_id"] = std::to_string(event.packet_id);
    record["user_id"] = event.user_id;
    record["amount_cents"] = event.amount_cents;
    record["seq"] = event.seq;
    record["at_millis"] = event.at_millis;
  } else {
    record["payload"] = message.payload;
  }
  const std::string line = boost::json::serialize(record) + "\n";
  const int fd = ::open(dead_letter_file_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) {
    return MakeError(ErrorCode::kInternal,
                     "cannot open " + dead_letter_file_.string() + ": " + std::strerror(errno));
  }
  const bool written = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size()) &&
                       ::fdatasync(fd) == 0;
  const int saved_errno = errno;
  ::close(fd);
  if (!written) {
    return MakeError(ErrorCode::kInternal, "cannot write " + dead_letter_file_.string() + ": " +
                                               std::strerror(saved_errno));
  }
  return {};
}

std::optional<std::uint64_t> JournalSource::Lag() {
  std::lock_guard lock(mutex_);
  return queue_.size();
}

}  // namespace redpacket::bus
