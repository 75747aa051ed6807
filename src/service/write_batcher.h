// Group commit for creates, deposits and new users: one thread takes every write queued while
// the previous batch was committing and runs them as one ledger transaction
// (LedgerWriter::WriteBatch: each write alone in a savepoint, one commit and one fsync for all),
// then calls each write's completion. A completion runs only after the commit returned, so an
// answer is never given for a write that is not durable.
// Post() is thread-safe and never blocks; preparations and completions run on the batcher's
// thread.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "ledger/ledger.h"

namespace redpacket::service {

class WriteBatcher {
 public:
  // Fills in what is too costly for an I/O thread (a create's split into shares), on the
  // batcher's thread just before the batch runs.
  using Prepare = std::function<void(ledger::Write&)>;
  using Done = std::function<void(ledger::WriteResult)>;

  struct Stats {
    std::uint64_t batches = 0;  // ledger transactions
    std::uint64_t writes = 0;   // writes answered
  };

  WriteBatcher(std::string name, std::unique_ptr<ledger::Ledger> ledger,
               std::size_t max_batch_writes);
  ~WriteBatcher();
  WriteBatcher(const WriteBatcher&) = delete;
  WriteBatcher& operator=(const WriteBatcher&) = delete;

  void Start();
  void Post(ledger::Write write, Prepare prepare, Done done);
  // Runs what is queued, then joins. Posts after Stop() are dropped.
  void Stop();
  std::size_t queue_depth() const;
  Stats stats() const;

 private:
  struct Pending {
    ledger::Write write;
    Prepare prepare;
    Done done;
  };
  void Run();

  std::string name_;
  std::unique_ptr<ledger::Ledger> ledger_;
  std::size_t max_batch_writes_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Pending> queue_;
  bool stopping_ = false;
  Stats stats_;
  std::thread thread_;
};

}  // namespace redpacket::service
