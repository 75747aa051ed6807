// The local journal seen as the worker's EventSource (embedded mode): the journal's durable
// batches are queued here in position order (partition 0, offset = position); Commit releases
// the journal segments the ledger has applied. A set-aside event is kept by the ledger itself
// (LedgerWriter::SetAside): DeadLetter keeps no copy. Thread-safe: Push/Close from any thread,
// Poll from one.
#pragma once

#include <condition_variable>
#include <deque>
#include <mutex>
#include <span>

#include "bus/bus.h"
#include "bus/local/journal.h"

namespace redpacket::bus {

class JournalSource final : public EventSource {
 public:
  explicit JournalSource(Journal& journal);

  // Queues durable events (the journal's DurableListener, and recovery's events at start).
  void Push(std::span<const PositionedEvent> events);
  // Wakes a waiting Poll; later polls return what is queued without waiting.
  void Close();

  domain::Result<std::vector<ConsumedMessage>> Poll(std::size_t max_messages,
                                                    std::chrono::milliseconds wait) override;
  domain::Status Commit(const PartitionOffsets& applied) override;
  domain::Status DeadLetter(const ConsumedMessage& message, const std::string& reason) override;
  std::optional<std::uint64_t> Lag() override;

 private:
  Journal& journal_;
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<PositionedEvent> queue_;
  bool closed_ = false;
};

}  // namespace redpacket::bus
