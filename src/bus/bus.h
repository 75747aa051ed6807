// Where decided grabs and refunds go to become durable before they are acknowledged: the local
// journal in embedded mode, Kafka in cluster mode. Thread-safe; Append never blocks.
#pragma once

#include <cstdint>
#include <functional>

#include "domain/packet.h"

namespace redpacket::bus {

class EventSink {
 public:
  using Completion = std::function<void()>;
  virtual ~EventSink() = default;
  // Queues the event; `done` runs (on some other thread) once it is durable. Events appended in
  // order from one thread become durable in that order. Returns the event's position.
  virtual std::uint64_t Append(const domain::LedgerEvent& event, Completion done) = 0;
  // `done` runs once every event up to `position` is durable.
  virtual void WhenDurable(std::uint64_t position, Completion done) = 0;
};

}  // namespace redpacket::bus
