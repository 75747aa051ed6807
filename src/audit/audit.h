// `redpacket audit`: checks money conservation and every packet's accounts from what is durable
// (the ledger plus the events not applied yet: the journal's, or what Redis holds). Blocking;
// reads only.
#pragma once

#include <chrono>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "domain/clock.h"
#include "domain/packet.h"
#include "ledger/ledger.h"
#include "store/store.h"

namespace redpacket::audit {

struct AuditReport {
  std::vector<std::string> checked;     // what was checked, one line each
  std::vector<std::string> violations;  // empty when everything holds
  bool ok() const { return violations.empty(); }
};

// Embedded: the SQLite ledger in data_dir plus every event its journal still holds: those beyond
// the applied position count as pending, those at or below it must be in the ledger (an applied
// position that moved past an event is a violation); every event the applier set aside (the
// ledger's dead_letters) is a violation. Throws std::runtime_error when the data directory
// cannot be read.
AuditReport RunAudit(const std::filesystem::path& data_dir);

// Whether the ledger holds `event`: the grab of that user with its amount and seq, or the
// packet's refund of that amount.
bool LedgerHolds(const ledger::AuditFacts& facts, const domain::LedgerEvent& event);

struct ClusterAuditOptions {
  // A grab or refund that Redis decided this long ago and that the ledger still lacks is a
  // violation, not "pending": nothing will deliver it any more.
  std::chrono::seconds pending_deadline{60};
  const domain::TimeSource* clock = &domain::SystemTime();  // "now" of those ages
};

// Cluster: the ledger (MariaDB primary) plus what the store (Redis) decided that the ledger does
// not have yet (pending until options.pending_deadline, a violation after). Also checks that
// every grab the ledger has is the one the store decided. Packets the store no longer holds
// (finished, keys expired) are checked from the ledger alone. Blocking (one snapshot per
// packet); call from a non-I/O thread. Throws std::runtime_error when the ledger cannot be read.
AuditReport RunClusterAudit(ledger::LedgerReader& ledger, store::PacketStore& store,
                            const ClusterAuditOptions& options = {});

// The checks themselves: every packet's shares, grabs and refund, every account, conservation
// (deposits == balances + escrow + pending), with `pending` (events durable on the bus, not
// applied yet) counted in, and no event set aside. `pending_source` names them in messages.
AuditReport CheckFacts(const ledger::AuditFacts& facts, std::span<const domain::LedgerEvent> pending,
                       std::string_view pending_source);

}  // namespace redpacket::audit
