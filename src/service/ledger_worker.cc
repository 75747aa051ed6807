// LedgerWorker: a task queue drained by one thread.
#include "service/ledger_worker.h"

#include <pthread.h>

namespace redpacket::service {

LedgerWorker::LedgerWorker(std::string name, std::unique_ptr<ledger::Ledger> ledger)
    : name_(std::move(name)), ledger_(std::move(ledger)) {}

LedgerWorker::~LedgerWorker() { Stop(); }

void LedgerWorker::Start() {
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), name_.substr(0, 15).c_str());
    Run();
  });
}

void LedgerWorker::Post(Task task) {
  {
    std::lock_guard lock(mutex_);
    if (stopping_ && !thread_.joinable()) return;
    tasks_.push_back(std::move(task));
  }
  wake_.notify_one();
}

void LedgerWorker::Stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  if (thread_.joinable()) thread_.join();
}

std::size_t LedgerWorker::queue_depth() const {
  std::lock_guard lock(mutex_);
  return tasks_.size();
}

void LedgerWorker::Run() {
  std::unique_lock lock(mutex_);
  for (;;) {
    wake_.wait(lock, [this] { return stopping_ || !tasks_.empty(); });
    if (tasks_.empty()) return;  // stopping and drained
    Task task = std::move(tasks_.front());
    tasks_.pop_front();
    lock.unlock();
    task(*ledger_);
    lock.lock();
  }
}

}  // namespace redpacket::service
