// WriteBatcher: a queue drained a batch at a time into one ledger transaction.
#include "service/write_batcher.h"

#include <pthread.h>

#include <vector>

namespace redpacket::service {

WriteBatcher::WriteBatcher(std::string name, std::unique_ptr<ledger::Ledger> ledger,
                           std::size_t max_batch_writes)
    : name_(std::move(name)),
      ledger_(std::move(ledger)),
      max_batch_writes_(max_batch_writes == 0 ? 1 : max_batch_writes) {}

WriteBatcher::~WriteBatcher() { Stop(); }

void WriteBatcher::Start() {
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), name_.substr(0, 15).c_str());
    Run();
  });
}

void WriteBatcher::Post(ledger::Write write, Prepare prepare, Done done) {
  {
    std::lock_guard lock(mutex_);
    if (stopping_ && !thread_.joinable()) return;
    queue_.push_back(Pending{std::move(write), std::move(prepare), std::move(done)});
  }
  wake_.notify_one();
}

void WriteBatcher::Stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  if (thread_.joinable()) thread_.join();
}

std::size_t WriteBatcher::queue_depth() const {
  std::lock_guard lock(mutex_);
  return queue_.size();
}

WriteBatcher::Stats WriteBatcher::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

void WriteBatcher::Run() {
  std::vector<Pending> batch;
  std::vector<ledger::Write> writes;
  std::unique_lock lock(mutex_);
  for (;;) {
    wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping and drained
    // Everything that queued up while the previous batch committed goes in this one: the
    // batch grows with the load, and one fsync covers it all.
    batch.clear();
    while (!queue_.empty() && batch.size() < max_batch_writes_) {
      batch.push_back(std::move(queue_.front()));
      queue_.pop_front();
    }
    lock.unlock();
    writes.clear();
    for (Pending& pending : batch) {
      if (pending.prepare) pending.prepare(pending.write);
      writes.push_back(std::move(pending.write));
    }
    std::vector<ledger::WriteResult> results = ledger_->WriteBatch(writes);
    for (std::size_t i = 0; i < batch.size(); ++i) batch[i].done(std::move(results[i]));
    lock.lock();
    stats_.batches += 1;
    stats_.writes += batch.size();
  }
}

}  // namespace redpacket::service
