// The service's read queue: one thread that owns one ledger connection and runs the reads that
// may lag (details of packets the store does not hold, history, balances) in order, so SQL never
// runs on an I/O thread. Post() is thread-safe and never blocks; tasks run on the queue's thread.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "ledger/ledger.h"
#include "threads/task_thread.h"

namespace redpacket::service {

class ReadQueue {
 public:
  using Task = std::function<void(ledger::Ledger&)>;

  ReadQueue(std::string name, std::unique_ptr<ledger::Ledger> ledger);

  void Start() { thread_.Start(); }
  void Post(Task task);
  // Runs what is queued, then joins. Posts after Stop() are dropped.
  void Stop() { thread_.Stop(); }
  std::size_t queue_depth() const { return thread_.queue_depth(); }

 private:
  std::unique_ptr<ledger::Ledger> ledger_;
  threads::TaskThread thread_;  // last: it stops (and joins) before the ledger goes
};

}  // namespace redpacket::service
