// `redpacket audit`: checks money conservation and every packet's accounts from what is durable
// (the ledger plus the events not applied yet: the journal's, or what Redis holds). Blocking;
// reads only.
#pragma once

#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "domain/packet.h"
#include "ledger/ledger.h"
#include "store/store.h"

namespace redpacket::audit {

struct AuditReport {
  std::vector<std::string> checked;     // what was checked, one line each
  std::vector<std::string> violations;  // empty when everything holds
  bool ok() const { return violations.empty(); }
};

// Embedded: the SQLite ledger in data_dir plus its journal's events not yet applied. Throws
// std::runtime_error when the data directory cannot be read.
AuditReport RunAudit(const std::filesystem::path& data_dir);

// Cluster: the ledger (MariaDB primary) plus what the store (Redis) holds that the ledger does
// not have yet: grabs in flight on the bus, or waiting for the reconciler. Also checks that
// every grab the ledger has is the one the store decided. Packets the store no longer holds
// (finished, keys expired) are checked from the ledger alone. Blocking (one snapshot per
// packet); call from a non-I/O thread. Throws std::runtime_error when the ledger cannot be read.
AuditReport RunClusterAudit(ledger::LedgerReader& ledger, store::PacketStore& store);

// The checks themselves: every packet's shares, grabs and refund, every account, and
// conservation (deposits == balances + escrow + pending), with `pending` (events durable on
// the bus, not applied yet) counted in. `pending_source` names them in messages.
AuditReport CheckFacts(const ledger::AuditFacts& facts, std::span<const domain::LedgerEvent> pending,
                       std::string_view pending_source);

}  // namespace redpacket::audit
