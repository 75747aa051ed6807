// What the system records and answers with: an account, a packet with its shares and grabs, a
// user's history, an unfinished packet's progress. Plain values shared by the ledger, the stores
// and the API, so that neither the stores nor http include the ledger's interface. Thread-safe
// as values are.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "domain/packet.h"
#include "domain/types.h"

namespace redpacket::domain {

struct UserRecord {
  UserId user_id = 0;
  std::string name;
  Cents balance_cents = 0;
};

struct PacketRecord {
  PacketId packet_id = 0;
  PacketSpec spec;  // sender, kind, total, count, greeting, expires_in_s, receiver
  TimePoint created_at;
  TimePoint expires_at;
  PacketStatus status = PacketStatus::kOpen;
  std::vector<Cents> shares;          // shares[seq - 1] is what the seq-th grab takes
  std::vector<Grab> grabs;            // applied grabs, ordered by seq
  std::optional<Cents> refund_cents;  // set once refunded
  // CreatePacket only: this answer repeats an earlier request's (same request_id), nothing was
  // debited now; the caller must not load the packet again (it may have been grabbed since).
  bool repeated = false;

  // A packet as its creation commits it: open, no grabs yet, no refund.
  static PacketRecord Created(PacketId packet_id, const PacketSpec& spec,
                              const std::vector<Cents>& shares, TimePoint created_at,
                              TimePoint expires_at) {
    return PacketRecord{.packet_id = packet_id,
                        .spec = spec,
                        .created_at = created_at,
                        .expires_at = expires_at,
                        .status = PacketStatus::kOpen,
                        .shares = shares,
                        .grabs = {},
                        .refund_cents = std::nullopt};
  }
};

enum class HistoryKind { kSent, kReceived };

struct HistoryItem {
  PacketId packet_id = 0;
  // kSent: the packet as created; kReceived: the grab.
  UserId sender_id = 0;
  PacketKind kind = PacketKind::kLucky;
  PacketStatus status = PacketStatus::kOpen;
  std::string greeting;
  Cents total_cents = 0;
  std::int64_t count = 0;
  Cents amount_cents = 0;  // kReceived only
  std::int64_t seq = 0;    // kReceived only
  TimePoint at;            // kSent: created_at; kReceived: grabbed_at
  TimePoint expires_at;    // kSent only
};

struct HistoryPage {
  std::vector<HistoryItem> items;
  std::optional<std::string> next_cursor;  // opaque; absent on the last page
};

// Where an unfinished packet stands in the ledger (cheap: no shares, no grabs).
struct PacketProgress {
  PacketId packet_id = 0;
  PacketStatus status = PacketStatus::kOpen;
  std::int64_t grabbed_count = 0;  // grabs applied
};

}  // namespace redpacket::domain
