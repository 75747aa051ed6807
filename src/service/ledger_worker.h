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

  LedgerWorker(std::string name, std::unique_ptr<ledger::Ledger> ledger);
  ~LedgerWorker();
  LedgerWorker(const LedgerWorker&) = delete;
  LedgerWorker& operator=(const LedgerWorker&) = delete;

  void Start();
  void Post(Task task);
  // Runs what is queued, then joins. Posts after Stop() are dropped.
  void Stop();
  std::size_t queue_depth() const;

 private:
  void Run();

  std::string name_;
  std::unique_ptr<ledger::Ledger> ledger_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Task> tasks_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace redpacket::service
