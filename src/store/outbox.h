// The outbox: events the hot path decided and recorded in the same atomic step as the decision,
// waiting to be published to the bus (cluster mode: one Redis stream per slot, appended by the
// grab and close scripts). The relay (src/relay) publishes them and removes them once the bus has
// acknowledged them. Interface only; store/redis implements it. Thread-safe.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "domain/packet.h"
#include "domain/status.h"

namespace redpacket::store {

struct OutboxEntry {
  int shard = 0;   // which outbox holds it (the packet's Redis slot)
  std::string id;  // its id there (a stream entry id)
  domain::LedgerEvent event;
};

// Called by the store with each entry it recorded, once the entry is as durable as the store
// promises (replicated): the relay's fast path. Must not block; runs on a store thread.
using OutboxListener = std::function<void(OutboxEntry)>;

class Outbox {
 public:
  using Entries = std::vector<OutboxEntry>;
  virtual ~Outbox() = default;

  // Non-blocking: removes entries whose events the bus acknowledged. A failure is logged only:
  // the entries are claimed and published again later, and the ledger applies an event once.
  virtual void Remove(Entries entries) = 0;

  // Blocking: up to `limit` entries recorded at least `min_age` ago (older than the fast path
  // takes to publish them), oldest first in each shard; each is replicated before it is returned,
  // so nothing is published that a failover could still take back. An error: a shard could not
  // be read (the entries of the others are not returned then either).
  virtual domain::Result<Entries> Claim(std::chrono::milliseconds min_age, std::size_t limit) = 0;

  // Blocking: whether an event of this packet still waits in the outbox (published or not).
  virtual domain::Result<bool> Holds(domain::PacketId packet_id) = 0;
};

}  // namespace redpacket::store
