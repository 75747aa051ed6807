// WriteBatcher: a queue drained a batch at a time into one ledger transaction.
#include "service/write_batcher.h"

namespace redpacket::service {

WriteBatcher::WriteBatcher(std::string name, std::unique_ptr<ledger::Ledger> ledger,
                           std::size_t max_batch_writes)
    : ledger_(std::move(ledger)),
      max_batch_writes_(max_batch_writes == 0 ? 1 : max_batch_writes),
      thread_({.name = std::move(name)}) {}

void WriteBatcher::Enqueue(Pending pending) {
  bool post = false;
  {
    std::lock_guard lock(mutex_);
    queue_.push_back(std::move(pending));
    post = !drain_posted_;
    drain_posted_ = true;
  }
  // One drain in flight at a time: what queues up while it commits waits for the next one, so
  // the batch grows with the load and one fsync covers it all.
  if (post) thread_.Post([this] { Drain(); });
}

// Batch after batch until the queue is empty (so a Stop(), which runs the posted drain, answers
// every write queued before it).
void WriteBatcher::Drain() {
  std::vector<Pending> batch;
  std::vector<ledger::Write> writes;
  while (true) {
    batch.clear();
    {
      std::lock_guard lock(mutex_);
      while (!queue_.empty() && batch.size() < max_batch_writes_) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      if (batch.empty()) {
        drain_posted_ = false;
        return;
      }
    }
    writes.clear();
    for (Pending& pending : batch) {
      if (pending.prepare) pending.prepare(pending.write);
      writes.push_back(std::move(pending.write));
    }
    std::vector<ledger::WriteResult> results = ledger_->WriteBatch(writes);
    for (std::size_t i = 0; i < batch.size(); ++i) batch[i].done(std::move(results[i]));
    std::lock_guard lock(mutex_);
    stats_.batches += 1;
    stats_.writes += batch.size();
  }
}

std::size_t WriteBatcher::queue_depth() const {
  std::lock_guard lock(mutex_);
  return queue_.size();
}

WriteBatcher::Stats WriteBatcher::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

}  // namespace redpacket::service
