// The rules an event must keep against its packet, and their wording.
#include "domain/event_rules.h"

#include <fmt/format.h>

#include <cstddef>
#include <cstdint>
#include <utility>

namespace redpacket::domain {
namespace {

// Why the packet refuses the event, or "" when it does not.
std::string RuleBroken(const LedgerEvent& event, const PacketShape* packet) {
  switch (event.type) {
    case LedgerEvent::Type::kGrab: {
      if (packet == nullptr) return "grab of an unknown packet";
      // The hot path hands out shares[seq - 1] to the seq-th grabber; any other amount means the
      // stream or the engine is corrupt, and crediting it would break conservation of money.
      const std::vector<Cents>& shares = packet->shares;
      if (event.seq < 1 || static_cast<std::uint64_t>(event.seq) > shares.size()) {
        return fmt::format("seq {} outside 1..{}", event.seq, shares.size());
      }
      const Cents share = shares[static_cast<std::size_t>(event.seq - 1)];
      if (event.amount_cents != share) {
        return fmt::format("amount {} but share {} is {}", event.amount_cents, event.seq, share);
      }
      return {};
    }
    case LedgerEvent::Type::kRefund:
      if (packet == nullptr) return "refund of an unknown packet";
      // What is left goes back to whoever paid for the packet, never to anyone else.
      if (event.user_id != packet->sender_id) {
        return fmt::format("refund to user {} but the sender is {}", event.user_id,
                           packet->sender_id);
      }
      // Within what the packet holds; what the grabs took besides is the database's CHECK.
      if (event.amount_cents < 0 || event.amount_cents > packet->total_cents) {
        return fmt::format("refund of {} cents from a packet of {}", event.amount_cents,
                           packet->total_cents);
      }
      return {};
  }
  return "unknown type";
}

}  // namespace

Error Refused(std::string message) { return MakeError(ErrorCode::kRefused, std::move(message)); }

Status CheckEvent(const LedgerEvent& event, const PacketShape* packet) {
  std::string broken = RuleBroken(event, packet);
  if (broken.empty()) return {};
  return Refused(fmt::format("event {}: {}", event.EventId(), broken));
}

}  // namespace redpacket::domain
