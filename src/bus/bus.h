// The event bus between the hot path and the ledger. Producers see an EventSink (where decided
// grabs and refunds become durable before they are acknowledged); the worker sees an EventSource
// (what it applies to the ledger, exactly once). Embedded mode: the local journal on both sides.
// Cluster mode: Kafka (topic red_packet_transactions, key = receiving user).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "domain/packet.h"
#include "domain/status.h"

namespace redpacket::bus {

using domain::PartitionOffsets;

class EventSink {
 public:
  using Completion = std::function<void()>;
  // Called with the reason when an event could not be made durable (a broker unreachable past
  // its timeout). The event may or may not be durable: the reconciler settles it.
  using Failure = std::function<void(domain::Error)>;
  virtual ~EventSink() = default;
  // Queues the event; `done` runs (on some other thread) once it is durable. Events appended in
  // order from one thread become durable in that order. Returns the event's position (0 when the
  // sink has no global order, as with Kafka).
  virtual std::uint64_t Append(const domain::LedgerEvent& event, Completion done) = 0;
  // As Append, but a sink that can fail (Kafka) calls `failed` instead of aborting the process.
  // The default ignores `failed` (the journal: see AppendOrFail).
  virtual void Publish(const domain::LedgerEvent& event, Completion done, Failure failed) {
    (void)failed;
    Append(event, std::move(done));
  }
  // `done` runs once every event up to `position` is durable.
  virtual void WhenDurable(std::uint64_t position, Completion done) = 0;

  // Why the sink cannot make a new event durable now (the journal's disk is full), or ok.
  // Never blocks. A store asks before it decides, so that it decides nothing it could not write.
  // The default: always ok.
  virtual domain::Status Accepting() const { return {}; }
  // As Append, but while the sink cannot make events durable promptly (the journal's disk is
  // full) `failed` runs instead of `done`, soon, on another thread: the event stays appended
  // (it becomes durable and is applied once the sink can write), but nobody may be told it is
  // durable. The default never fails.
  virtual std::uint64_t AppendOrFail(const domain::LedgerEvent& event, Completion done,
                                     Failure failed) {
    (void)failed;
    return Append(event, std::move(done));
  }
  // As WhenDurable, with `failed` as in AppendOrFail (it may run on the calling thread).
  virtual void WhenDurableOrFail(std::uint64_t position, Completion done, Failure failed) {
    (void)failed;
    WhenDurable(position, std::move(done));
  }
};

// Where the bus's streams end now: for each partition, the offset the next event will get (a
// consumer that has applied up to offset - 1 has everything published so far). Cluster mode's
// loader waits for the ledger to reach these before it restores a lost packet. Blocking.
class BusPositions {
 public:
  virtual ~BusPositions() = default;
  virtual domain::Result<PartitionOffsets> EndOffsets(std::chrono::milliseconds timeout) = 0;
};

// One message read from the bus: its place, and the event or why it could not be decoded.
struct ConsumedMessage {
  std::int32_t partition = 0;
  std::uint64_t offset = 0;
  std::optional<domain::LedgerEvent> event;  // nullopt: undecodable (see decode_error)
  std::string decode_error;
  std::string payload;  // the raw bytes as read (for the dead-letter record)
};

// What the worker consumes. Blocking; one thread at a time (the worker's).
class EventSource {
 public:
  virtual ~EventSource() = default;
  // Waits up to `wait` for messages and returns at most `max_messages`, in order within each
  // partition. An error is transient (kUnavailable: retry later) unless said otherwise.
  virtual domain::Result<std::vector<ConsumedMessage>> Poll(std::size_t max_messages,
                                                            std::chrono::milliseconds wait) = 0;
  // Everything polled up to these offsets (inclusive) is applied: Kafka commits the group's
  // offsets, the journal releases segments. Called only after the ledger committed them.
  virtual domain::Status Commit(const PartitionOffsets& applied) = 0;
  // A copy of a message the worker set aside (it is kept in the ledger: LedgerWriter::SetAside),
  // for operators' tools: Kafka sends it to the dead-letter topic; the journal keeps nothing
  // more. Best effort: the worker logs a failure and goes on.
  virtual domain::Status DeadLetter(const ConsumedMessage& message, const std::string& reason) = 0;
  // Messages not yet consumed by this group (a metric); nullopt when unknown.
  virtual std::optional<std::uint64_t> Lag() { return std::nullopt; }
};

}  // namespace redpacket::bus
