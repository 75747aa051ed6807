// What the loader (src/loader) needs of a store that can lose a packet and restore it from the
// ledger (cluster mode: Redis). Interface only; store/redis implements it. Every call blocks (call
// from a non-I/O thread); thread-safe.
#pragma once

#include <cstddef>
#include <vector>

#include "domain/status.h"
#include "domain/types.h"

namespace redpacket::store {

// What Reserve found.
enum class Reservation {
  kReserved,  // the packet's keys were missing (or reserved already): grabs answer 503 now
  kLoading,   // a load is under way or was cut short: Add resumes it
  kHeld,      // the store holds the packet (open or finished): nothing to restore
};

class RestoreTarget {
 public:
  virtual ~RestoreTarget() = default;

  // Before a packet whose keys are missing is restored: marks it reserved (replicated), so
  // that its grabs answer 503 while the loader waits for the ledger to catch up.
  virtual domain::Result<Reservation> Reserve(domain::PacketId packet_id,
                                              domain::TimePoint expires_at) = 0;
  // Takes up to `limit` packets that a server found lost (PacketStore::ReportLost).
  virtual domain::Result<std::vector<domain::PacketId>> TakeLost(std::size_t limit) = 0;
  // The ledger has finished this packet: stop sweeping it, and drop a reservation of it (its
  // grabs and reads are answered from the ledger then).
  virtual domain::Status Unregister(domain::PacketId packet_id) = 0;
};

}  // namespace redpacket::store
