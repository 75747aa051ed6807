// ReadQueue: ledger reads on a TaskThread of their own.
#include "service/read_queue.h"

namespace redpacket::service {

ReadQueue::ReadQueue(std::string name, std::unique_ptr<ledger::Ledger> ledger)
    : ledger_(std::move(ledger)), thread_({.name = std::move(name)}) {}

void ReadQueue::Post(Task task) {
  thread_.Post([this, task = std::move(task)] { task(*ledger_); });
}

}  // namespace redpacket::service
