// The reconciler, now a check that reports: with grabs and refunds recorded in the outbox by the
// script that decides them (store/outbox.h) and published by the relay, nothing is left for it
// to repair. Each pass compares the store with the ledger for every packet the ledger still has
// unfinished, with one cheap call per packet, and reports:
//  - packets the store no longer holds (lost keys): logged and handed to the loader
//    (PacketStore::ReportLost), which restores them safely;
//  - packets whose grabs the ledger still lacks (in flight, or the workers behind): counted.
// Works on the interfaces only. Blocking; not thread-safe: run it from one non-I/O thread (the
// sweeper-lease holder's).
#pragma once

#include <chrono>
#include <cstdint>

#include "ledger/ledger.h"
#include "store/store.h"

namespace redpacket::reconciler {

struct ReconcilerOptions {
  std::chrono::milliseconds call_timeout{5000};  // each store call
};

struct ReconcileStats {
  std::size_t packets_checked = 0;
  std::size_t packets_lost = 0;    // unfinished in the ledger, not held by the store
  std::size_t packets_behind = 0;  // the store holds more grabs than the ledger has applied
  std::int64_t grabs_behind = 0;   // how many, over those packets
  std::size_t failures = 0;        // store calls that failed or timed out
};

class Reconciler {
 public:
  Reconciler(store::PacketStore& store, ledger::LedgerReader& ledger,
             ReconcilerOptions options = {});
  // One pass over the ledger's unfinished packets.
  domain::Result<ReconcileStats> RunOnce();

 private:
  store::PacketStore& store_;
  ledger::LedgerReader& ledger_;
  ReconcilerOptions options_;
};

}  // namespace redpacket::reconciler
