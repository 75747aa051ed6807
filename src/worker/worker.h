// The worker: consumes grab and refund events from the bus and applies them to the ledger in
// batched transactions, exactly once, then commits the bus offsets. One component for both
// modes: fed by the local journal (embedded, in-process) or by a Kafka consumer group
// (cluster, `redpacket worker`). An event it cannot apply is set aside on the bus's dead-letter
// channel with its reason; it never blocks its partition and never stops the process.
// Thread-safety: Start/Stop/stats from any thread; RunOnce/Drain from one thread at a time.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "bus/bus.h"
#include "ledger/ledger.h"

namespace redpacket::worker {

struct WorkerOptions {
  std::string name = "rp-worker";          // thread name (at most 15 characters)
  std::size_t max_batch_events = 1000;     // events per ledger transaction
  std::chrono::milliseconds poll_wait{5};  // how long a poll waits for the first message
  // After a batch smaller than max_batch_events, wait this long before the next poll: fewer,
  // larger transactions (embedded mode leaves the disk to the journal's fsyncs).
  std::chrono::milliseconds batch_interval{0};
  std::chrono::milliseconds retry_initial{50};  // backoff of transient errors, doubling...
  std::chrono::milliseconds retry_max{2000};    // ...up to this
  bool background = false;  // run the thread at nice 19 (embedded: the hot path comes first)
};

struct WorkerStats {
  std::uint64_t applied_events = 0;  // events handed to the ledger (repeats included)
  std::uint64_t dead_lettered = 0;   // messages set aside
  std::uint64_t batches = 0;         // ledger transactions committed
  std::uint64_t retries = 0;         // transient failures retried
  std::uint64_t last_offset = 0;     // highest offset committed (any partition)
  std::optional<std::uint64_t> lag;  // from the source, when it knows
  // Grab to credit: from the grab's time (the event's `at`) to the commit of the transaction that
  // applied it, over the last kLatencyWindow events applied; 0 before any.
  std::chrono::milliseconds credit_latency_p50{0};
  std::chrono::milliseconds credit_latency_p99{0};
};

class Worker {
 public:
  // Called after each batch is committed (or a message set aside) with the messages handled,
  // on the worker's thread.
  using HandledListener = std::function<void(std::span<const bus::ConsumedMessage>)>;

  Worker(bus::EventSource& source, ledger::LedgerWriter& ledger, WorkerOptions options,
         HandledListener on_handled = {});
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Blocking: one poll, apply, commit round. Returns how many messages it handled. Transient
  // errors are retried with backoff until they pass or Stop() is called (then nothing of the
  // batch is committed: the bus delivers it again, and the ledger skips what it has).
  std::size_t RunOnce();
  // Blocking: rounds until a poll finds nothing (start-up recovery).
  void Drain();

  // Runs rounds on a thread of its own until Stop(), which finishes the batch in hand,
  // commits it and joins.
  void Start();
  void Stop();

  WorkerStats stats() const;

 private:
  // Applies `batch` (already decoded) with its offsets; on a contradiction, isolates the bad
  // events one by one and dead-letters them. false: stopped while retrying.
  bool ApplyBatch(std::span<const bus::ConsumedMessage> batch);
  // Retries `attempt` while it fails with kUnavailable. nullopt: stopped while retrying.
  std::optional<domain::Status> WithRetry(const std::function<domain::Status()>& attempt,
                                          const char* what);
  void SetAside(const bus::ConsumedMessage& message, const std::string& reason);
  void Notify(std::span<const bus::ConsumedMessage> handled);

  bus::EventSource& source_;
  ledger::LedgerWriter& ledger_;
  WorkerOptions options_;
  HandledListener on_handled_;
  std::atomic<bool> stopping_{false};
  std::thread thread_;

  std::atomic<std::uint64_t> applied_events_{0};
  std::atomic<std::uint64_t> dead_lettered_{0};
  std::atomic<std::uint64_t> batches_{0};
  std::atomic<std::uint64_t> retries_{0};
  std::atomic<std::uint64_t> last_offset_{0};
  std::atomic<std::int64_t> lag_{-1};
  std::chrono::steady_clock::time_point next_lag_check_{};  // the polling thread's

  static constexpr std::size_t kLatencyWindow = 4096;
  void RecordLatencies(std::span<const domain::LedgerEvent> events);
  mutable std::mutex latency_mutex_;
  std::vector<std::int64_t> latencies_ms_;  // a ring of kLatencyWindow
  std::size_t latency_next_ = 0;
};

}  // namespace redpacket::worker
