// A thread that owns one Ledger connection and runs tasks against it in order: SQL never runs on
// an I/O thread. Post() is thread-safe and never blocks; tasks run on the worker's thread.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "ledger/ledger.h"

namespace redpacket::service {

class LedgerWorker {
 public:
  using Task = std::function<void(ledger::Ledger&)>;

  // background: the thread runs at the lowest CPU priority (nice 19). Its work is deferred
  // (applying the journal), so under a stampede the I/O and journal threads get the CPU first
  // and the ledger catches up when the burst is over; pending_cents shows the gap meanwhile.
  LedgerWorker(std::string name, std::unique_ptr<ledger::Ledger> ledger, bool background = false);
  ~LedgerWorker();
  LedgerWorker(const LedgerWorker&) = delete;
  LedgerWorker& operator=(const LedgerWorker&) = delete;

  // Before Start() only: direct access for recovery on the starting thread.
  ledger::Ledger& ledger() { return *ledger_; }

  void Start();
  void Post(Task task);
  // Runs what is queued, then joins. Posts after Stop() are dropped.
  void Stop();
  std::size_t queue_depth() const;

 private:
  void Run();

  std::string name_;
  bool background_;
  std::unique_ptr<ledger::Ledger> ledger_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Task> tasks_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace redpacket::service
