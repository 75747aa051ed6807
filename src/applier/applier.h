// The applier: consumes grab and refund events from the bus and applies them to the ledger in
// batched transactions, exactly once, then commits the bus offsets. One component for both
// modes: fed by the local journal (embedded, in-process) or by a Kafka consumer group
// (cluster, `redpacket worker`).
// The applied position never moves past an event the ledger does not hold: a ledger that cannot
// write (the disk full, an I/O error, read-only, unreachable) stalls the applier, which retries
// with backoff and commits nothing meanwhile; only an event the ledger's rules refuse on its own
// (kRefused) is set aside, kept whole in the ledger in the transaction that moves the position
// past it (then copied to the bus's dead-letter channel, best effort).
// Thread-safety: Start/Stop/stats from any thread; RunOnce/Drain from one thread at a time.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "bus/bus.h"
#include "domain/clock.h"
#include "ledger/ledger.h"
#include "threads/task_thread.h"

namespace redpacket::applier {

struct ApplierOptions {
  std::string name = "rp-worker";          // thread name (at most 15 characters)
  std::size_t max_batch_events = 1000;     // events per ledger transaction
  std::chrono::milliseconds poll_wait{5};  // how long a poll waits for the first message
  // After a batch smaller than max_batch_events, wait this long before the next poll: fewer,
  // larger transactions (embedded mode leaves the disk to the journal's fsyncs).
  std::chrono::milliseconds batch_interval{0};
  std::chrono::milliseconds retry_initial{50};  // backoff of failed writes, doubling...
  std::chrono::milliseconds retry_max{2000};    // ...up to this
  bool background = false;  // run the thread at nice 19 (embedded: the hot path comes first)
  // "Now" of a set-aside record, the stall's start and the grab-to-credit latency (must outlive
  // the applier).
  const domain::TimeSource* clock = &domain::SystemTime();
};

struct ApplierStats {
  std::uint64_t applied_events = 0;   // events handed to the ledger (repeats included)
  std::uint64_t dead_lettered = 0;    // messages set aside (kept in the ledger's dead_letters)
  std::uint64_t batches = 0;          // ledger transactions committed
  std::uint64_t retries = 0;          // failed ledger writes, polls and commits retried
  std::uint64_t commits_dropped = 0;  // bus commits dropped: the consumer group had moved on
  std::uint64_t last_offset = 0;      // highest offset committed (any partition)
  std::optional<std::uint64_t> lag;   // from the source, when it knows
  // Set while the ledger fails every write: since when (the first failure of the run) and the
  // last error. The worker applies nothing meanwhile and moves no position.
  std::optional<domain::TimePoint> stalled_since;
  std::string stall_reason;
  // Grab to credit: from the grab's time (the event's `at`) to the commit of the transaction that
  // applied it, over the last kLatencyWindow events applied; 0 before any.
  std::chrono::milliseconds credit_latency_p50{0};
  std::chrono::milliseconds credit_latency_p99{0};
};

class Applier {
 public:
  // Called after each ledger transaction (a batch applied, or a message set aside) with the
  // messages it handled, on the applier's thread.
  using HandledListener = std::function<void(std::span<const bus::ConsumedMessage>)>;

  Applier(bus::EventSource& source, ledger::LedgerWriter& ledger, ApplierOptions options,
          HandledListener on_handled = {});
  ~Applier();
  Applier(const Applier&) = delete;
  Applier& operator=(const Applier&) = delete;

  // Blocking: one poll, apply, commit round. Returns how many messages it handled. A ledger
  // write that fails is retried with backoff until it passes or Stop() is called (then nothing
  // more of the batch is committed: the bus delivers it again, and the ledger skips what it has).
  std::size_t RunOnce();
  // Blocking: rounds until a poll finds nothing (start-up recovery).
  void Drain();

  // Runs rounds on a thread of its own until Stop(), which finishes the batch in hand,
  // commits it and joins.
  void Start();
  void Stop();

  ApplierStats stats() const;

  struct Stall {
    domain::TimePoint since;  // the first failed write of the run
    std::string reason;       // the last one's error
  };
  // Cheap (for /readyz): since when and why the ledger fails every write; nullopt while it writes.
  std::optional<Stall> stall() const;

 private:
  // Applies `messages` in order, a run of decoded ones per transaction; an undecodable message,
  // or an event the ledger refuses alone, is set aside. false: stopped while retrying.
  bool Handle(std::span<const bus::ConsumedMessage> messages);
  // One run of decoded messages in one transaction; on a refusal, one message at a time.
  bool ApplyRun(std::span<const bus::ConsumedMessage> run);
  // One transaction of `run`'s events with its offsets, retried until it commits or the ledger
  // refuses it. nullopt: stopped while retrying.
  std::optional<domain::Status> Apply(std::span<const bus::ConsumedMessage> run);
  // Keeps the message in the ledger with its reason and moves its partition's offset past it
  // (retried until it commits), then copies it to the bus's dead-letter channel, best effort.
  // false: stopped while retrying.
  bool SetAside(const bus::ConsumedMessage& message, const std::string& reason);
  // Retries a ledger write with backoff while it fails, reporting the applier stalled meanwhile;
  // a kRefused answer is final unless `retry_refused`. nullopt: stopped while retrying.
  std::optional<domain::Status> RetryLedger(const std::function<domain::Status()>& attempt,
                                            const char* what, bool retry_refused);
  // Commits the bus offsets: retried while kUnavailable; any other failure (the consumer group
  // moved on: the partitions' new owner reads them again) is logged and dropped.
  void CommitOffsets(const bus::PartitionOffsets& offsets);
  // Sleeps `backoff` in small steps; false when Stop() was called meanwhile.
  bool Backoff(std::chrono::milliseconds backoff);
  void MarkStalled(const std::string& reason);
  void ClearStalled();
  void Notify(std::span<const bus::ConsumedMessage> handled);

  bus::EventSource& source_;
  ledger::LedgerWriter& ledger_;
  ApplierOptions options_;
  HandledListener on_handled_;
  void Round();

  std::atomic<bool> stopping_{false};

  std::atomic<std::uint64_t> applied_events_{0};
  std::atomic<std::uint64_t> dead_lettered_{0};
  std::atomic<std::uint64_t> batches_{0};
  std::atomic<std::uint64_t> retries_{0};
  std::atomic<std::uint64_t> commits_dropped_{0};
  std::atomic<std::uint64_t> last_offset_{0};
  std::atomic<std::int64_t> lag_{-1};
  std::chrono::steady_clock::time_point next_lag_check_{};  // the polling thread's

  mutable std::mutex stall_mutex_;
  std::optional<domain::TimePoint> stalled_since_;  // under stall_mutex_
  std::string stall_reason_;                        // under stall_mutex_

  static constexpr std::size_t kLatencyWindow = 4096;
  void RecordLatencies(std::span<const domain::LedgerEvent> events);
  mutable std::mutex latency_mutex_;
  std::vector<std::int64_t> latencies_ms_;  // a ring of kLatencyWindow
  std::size_t latency_next_ = 0;

  threads::TaskThread thread_;  // last: it stops (and joins) before the rest goes
};

}  // namespace redpacket::applier
