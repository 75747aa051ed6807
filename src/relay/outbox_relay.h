// The relay: moves the events the hot path recorded in its outbox (store/outbox.h) to the bus, in
// large batches (the Kafka producer's), and removes them from the outbox only once the bus has
// acknowledged them. Publication is the system's job, never the request's: a grab is answered
// once its event is recorded and replicated, and from there this relay (fast path: every entry
// handed by the store at once; recovery: what nobody handed, or what failed, claimed from the
// outbox by the sweeper-lease holder) delivers it however long the broker is away. A crash of
// the relay loses nothing: unacknowledged entries stay in the outbox and are claimed again; a
// re-publish is harmless, the worker applies an event once by its unique keys.
// Thread-safe; Hand never blocks; RecoverOnce and Stop block.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <vector>

#include "bus/bus.h"
#include "domain/status.h"
#include "store/outbox.h"
#include "threads/task_thread.h"

namespace redpacket::relay {

struct RelayOptions {
  // Entries published and not yet acknowledged, at most; beyond, a handed entry is left in the
  // outbox for the recovery (a broker away for long must not grow this process without bound).
  std::size_t max_in_flight = 200'000;
  // Acknowledged entries are removed from the outbox in batches, this often.
  std::chrono::milliseconds remove_interval{5};
  // Recovery: entries recorded at least this long ago (the fast path publishes in milliseconds;
  // a younger entry would only be published twice), at most this many per pass.
  std::chrono::milliseconds claim_min_age{5000};
  std::size_t claim_limit = 20'000;
  // Recovery: how long a pass waits for the bus to acknowledge what it published.
  std::chrono::milliseconds recovery_wait{30000};
};

struct RelayStats {
  std::uint64_t handed = 0;        // entries the store handed over (fast path)
  std::uint64_t acknowledged = 0;  // published and acknowledged by the bus (both paths)
  std::uint64_t failed = 0;        // not acknowledged (left in the outbox)
  std::uint64_t dropped = 0;       // handed while max_in_flight were in flight
  std::uint64_t recovered = 0;     // claimed from the outbox by the recovery
  std::uint64_t in_flight = 0;     // published, not settled yet
};

struct RecoveryStats {
  std::size_t claimed = 0;
  std::size_t acknowledged = 0;
};

class OutboxRelay {
 public:
  // `sink` must outlive the relay.
  OutboxRelay(bus::EventSink& sink, RelayOptions options = {});
  ~OutboxRelay();  // Stop()s
  OutboxRelay(const OutboxRelay&) = delete;
  OutboxRelay& operator=(const OutboxRelay&) = delete;

  // Non-blocking, any thread: publishes a recorded entry. Entries handed before Start wait.
  void Hand(store::OutboxEntry entry);
  // Starts the thread that removes acknowledged entries from `outbox` (which must outlive the
  // relay's Stop) and publishes what was handed before.
  void Start(store::Outbox& outbox);
  // Blocking: removes what is acknowledged and stops the thread. Entries still unacknowledged
  // stay in the outbox (a later recovery publishes them). Idempotent.
  void Stop();

  // Blocking, from one thread at a time (the sweeper-lease holder's): claims the entries that
  // have waited longer than claim_min_age, publishes them, waits up to recovery_wait for the
  // acknowledgements and removes what was acknowledged. An error: the outbox could not be read.
  domain::Result<RecoveryStats> RecoverOnce();

  RelayStats stats() const;

 private:
  void Publish(store::OutboxEntry entry, bool handed);
  void RemoveAcknowledged();  // a tick of remover_

  bus::EventSink& sink_;
  RelayOptions options_;
  store::Outbox* outbox_ = nullptr;

  std::mutex mutex_;
  std::vector<store::OutboxEntry> before_start_;
  std::vector<store::OutboxEntry> acknowledged_;  // to remove
  bool started_ = false;
  bool stopping_ = false;
  threads::TaskThread remover_;  // "rp-relay": removes acknowledged entries every remove_interval

  std::atomic<std::uint64_t> handed_{0}, acknowledged_count_{0}, failed_{0}, dropped_{0},
      recovered_{0}, in_flight_{0};
};

}  // namespace redpacket::relay
