// The loader (cluster mode): every packet whose debit the ledger holds ends up loaded in the
// hot-path store, and a packet whose store keys were lost is restored without ever offering a
// taken share again. It works through the ledger's load intents (ledger.h): those a creation left
// behind (its server died before the load finished) and those of packets found lost (a grab or
// a sweep that met no keys; they arrive through RestoreTarget::TakeLost). A lost packet is
// reserved first (its grabs answer a retryable 503), then restored only once the ledger holds
// every event it ever decided: none left in its slot's outbox, and the ledger has applied the bus
// up to where it ended after that. Nothing here depends on timing: each pass checks those facts
// and leaves what is not ready to the next pass.
// Works on interfaces only. Blocking; not thread-safe: run it from one non-I/O thread (the
// sweeper-lease holder's).
#pragma once

#include <chrono>
#include <cstddef>
#include <span>
#include <unordered_map>

#include "bus/bus.h"
#include "ledger/ledger.h"
#include "store/outbox.h"
#include "store/restore.h"
#include "store/store.h"

namespace redpacket::loader {

struct LoaderOptions {
  std::size_t batch = 200;  // intents looked at per pass (oldest packet first)
  std::chrono::milliseconds bus_timeout{5000};
  std::chrono::milliseconds load_timeout{30000};  // one packet's load into the store
};

struct LoaderStats {
  std::size_t reported_lost = 0;  // packets reported lost, turned into intents
  std::size_t pending = 0;        // intents looked at
  std::size_t loaded = 0;         // loads finished (creations whose server did not)
  std::size_t restored = 0;       // lost packets restored from the ledger
  std::size_t finished = 0;       // intents of packets the ledger had finished: nothing to load
  std::size_t waiting = 0;        // reserved, waiting for the ledger to hold every event
  std::size_t failures = 0;       // a call that failed (tried again next pass)
};

class PacketLoader {
 public:
  // `ledger`: the primary (writes the intents, reads what must be current). All must outlive
  // the loader.
  PacketLoader(store::PacketStore& store, store::RestoreTarget& target, store::Outbox& outbox,
               ledger::Ledger& ledger, bus::BusPositions& bus, LoaderOptions options = {});

  // Packets the sweeper found lost: their intents are recorded (the next pass restores them).
  void Lost(std::span<const domain::PacketId> packet_ids);

  // One pass: takes the packets reported lost, then works on the pending intents.
  domain::Result<LoaderStats> RunOnce();

 private:
  enum class Step { kDone, kWaiting, kFailed };
  Step Load(domain::PacketId packet_id, LoaderStats& stats);
  Step Restore(const ledger::PacketRecord& record, LoaderStats& stats);
  domain::Status AddToStore(const ledger::PacketRecord& record);

  store::PacketStore& store_;
  store::RestoreTarget& target_;
  store::Outbox& outbox_;
  ledger::Ledger& ledger_;
  bus::BusPositions& bus_;
  LoaderOptions options_;
  // Reserved packets: the bus offsets the ledger must reach before they are restored.
  std::unordered_map<domain::PacketId, domain::PartitionOffsets> waiting_;
  // The ledger's applied offsets, read at most once per pass.
  std::optional<domain::PartitionOffsets> applied_;
};

}  // namespace redpacket::loader
