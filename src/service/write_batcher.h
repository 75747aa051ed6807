// Group commit for creates, deposits, new users and load intents: every write queued while the
// previous batch was committing runs as one ledger transaction (LedgerWriter::WriteBatch: each
// write alone in a savepoint, one commit and one fsync for all), then each write's completion
// runs with its own typed answer. A completion runs only after the commit returned, so an
// answer is never given for a write that is not durable.
// Post() is thread-safe and never blocks; preparations and completions run on the batcher's
// thread.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <variant>
#include <vector>

#include "ledger/ledger.h"
#include "threads/task_thread.h"

namespace redpacket::service {

class WriteBatcher {
 public:
  struct Stats {
    std::uint64_t batches = 0;  // ledger transactions
    std::uint64_t writes = 0;   // writes answered
  };

  WriteBatcher(std::string name, std::unique_ptr<ledger::Ledger> ledger,
               std::size_t max_batch_writes);

  void Start() { thread_.Start(); }
  // Queues `write`; `prepare` (may be empty) fills in what is too costly for an I/O thread (a
  // create's split into shares) on the batcher's thread just before the batch runs; `done` gets
  // the write's own answer.
  template <class W>
  void Post(W write, std::function<void(W&)> prepare, std::function<void(typename W::Answer)> done);
  // Runs what is queued, then joins. Posts after Stop() are dropped.
  void Stop() { thread_.Stop(); }
  std::size_t queue_depth() const;
  Stats stats() const;

 private:
  struct Pending {
    ledger::Write write;
    std::function<void(ledger::Write&)> prepare;
    std::function<void(ledger::WriteResult)> done;
  };
  void Enqueue(Pending pending);
  void Drain();

  std::unique_ptr<ledger::Ledger> ledger_;
  std::size_t max_batch_writes_;
  mutable std::mutex mutex_;
  std::deque<Pending> queue_;
  bool drain_posted_ = false;
  Stats stats_;
  threads::TaskThread thread_;  // last: it stops (and joins) before the rest goes
};

template <class W>
void WriteBatcher::Post(W write, std::function<void(W&)> prepare,
                        std::function<void(typename W::Answer)> done) {
  Pending pending;
  pending.write = std::move(write);
  if (prepare) {
    pending.prepare = [prepare = std::move(prepare)](ledger::Write& any) {
      prepare(std::get<W>(any));
    };
  }
  pending.done = [done = std::move(done)](ledger::WriteResult result) {
    // The ledger answers each write with the alternative of its own kind.
    std::visit(
        [&done](auto& answer) {
          if constexpr (std::is_same_v<std::decay_t<decltype(answer)>, typename W::Answer>) {
            done(std::move(answer));
          }
        },
        result);
  };
  Enqueue(std::move(pending));
}

}  // namespace redpacket::service
