// The reconciler: settles what the hot path decided but the ledger does not have. For every
// packet the ledger still has open or expired, it asks the store how many grabs it holds (one
// cheap call) and
//  - reloads a packet the store does not hold (a create that debited the sender in the ledger,
//    then failed in Redis): once loaded, it can be grabbed, and the sweeper refunds it at expiry;
//  - when the ledger is still behind a count the store had at least `min_age` ago (events in
//    flight catch up within that; a missing one never does), reads the packet's grabs from the
//    store and re-emits each one the ledger lacks and that is older than `min_age` (a grab whose
//    script ran but whose WAIT, broker ack or deadline failed answered 503: its share stays
//    taken and would never be credited otherwise). The event id makes a late original and
//    this copy one credit.
// Reading every grab of a hot packet is heavy for Redis (one script over the whole hash): it
// happens only when something is missing, never on every pass.
// Works on the interfaces only (store, ledger reader, bus sink). Blocking; not thread-safe: run
// it from one non-I/O thread (the sweeper's, under the sweeper lease).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <unordered_map>

#include "bus/bus.h"
#include "ledger/ledger.h"
#include "store/store.h"

namespace redpacket::reconciler {

struct ReconcilerOptions {
  std::chrono::milliseconds min_age{30000};
  // A grab re-emitted is not re-emitted again for this long (the worker may be down or behind:
  // one copy on the bus is enough until it catches up).
  std::chrono::milliseconds reemit_after{60000};
  std::chrono::milliseconds call_timeout{5000};  // each store or bus call
};

struct ReconcileStats {
  std::size_t packets_checked = 0;
  std::size_t grabs_reemitted = 0;
  std::size_t packets_reloaded = 0;
  std::size_t failures = 0;  // store or bus calls that failed or timed out (tried next pass)
};

class Reconciler {
 public:
  Reconciler(store::PacketStore& store, ledger::LedgerReader& ledger, bus::EventSink& sink,
             ReconcilerOptions options = {});
  // One pass over the ledger's unfinished packets. Keep the object between passes: it
  // remembers what it re-emitted.
  domain::Result<ReconcileStats> RunOnce(domain::TimePoint now);

 private:
  void Reload(domain::PacketId packet_id, ReconcileStats& stats);
  // false when a store, ledger or bus call failed (tried again next pass).
  bool ReemitMissing(domain::PacketId packet_id, domain::TimePoint now, ReconcileStats& stats);

  store::PacketStore& store_;
  ledger::LedgerReader& ledger_;
  bus::EventSink& sink_;
  ReconcilerOptions options_;
  std::unordered_map<std::string, domain::TimePoint> reemitted_;  // event id -> when
  // Per packet: the store's grab count when first seen ahead of the ledger, and when.
  struct Observation {
    std::int64_t store_count = 0;
    domain::TimePoint at;
  };
  std::unordered_map<domain::PacketId, Observation> ahead_;
};

}  // namespace redpacket::reconciler
