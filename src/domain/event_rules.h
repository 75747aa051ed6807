// The rules an event must keep before a ledger applies it, written once for every ledger: a grab
// takes exactly the share its seq names, a refund goes to the sender and stays within the
// packet's total, and the packet is one the ledger holds. Pure; thread-safe.
#pragma once

#include <string>
#include <vector>

#include "domain/packet.h"
#include "domain/status.h"
#include "domain/types.h"

namespace redpacket::domain {

// The part of a packet that checking an event needs. Fixed at creation (packet ids are never
// reused), so a ledger may cache it without it going stale.
struct PacketShape {
  UserId sender_id = 0;
  Cents total_cents = 0;
  std::vector<Cents> shares;  // shares[seq - 1] is what the seq-th grab takes
};

// An event the ledger's rules refuse on its own (ErrorCode::kRefused): retrying it can never
// succeed, so the applier sets it aside instead of retrying.
Error Refused(std::string message);

// Ok when `event` may be applied to `packet` (nullptr: a packet the ledger does not hold);
// otherwise kRefused, "event <id>: <the rule broken>". Whether the event was applied before is
// the ledger's to tell (its unique keys), not this check's.
Status CheckEvent(const LedgerEvent& event, const PacketShape* packet);

}  // namespace redpacket::domain
