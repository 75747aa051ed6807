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
  // The journal never fails (a failed fsync aborts), so the default ignores `failed`.
  virtual void Publish(const domain::LedgerEvent& event, Completion done, Failure failed) {
    (void)failed;
    Append(event, std::move(done));
  }
  // `done` runs once every event up to `position` is durable.
  virtual void WhenDurable(std::uint64_t position, Completion done) = 0;
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
  // Sets a message aside with the reason it cannot be applied (Kafka: the dead-letter topic;
  // the journal: a dead-letter file), so it never blocks its partition again.
  virtual domain::Status DeadLetter(const ConsumedMessage& message, const std::string& reason) = 0;
  // Messages not yet consumed by this group (a metric); nullopt when unknown.
  virtual std::optional<std::uint64_t> Lag() { return std::nullopt; }
};

}  // namespace redpacket::bus
