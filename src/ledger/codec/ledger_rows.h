// Rows of the ledger's packets and grabs, as every SQL ledger selects them, turned into records.
// A template over the row type: SQLite's Query and MariaDB's Rows both offer Int, OptionalInt,
// Text and Blob by column index. Pure; thread-safe.
#pragma once

#include <fmt/format.h>

#include <utility>

#include "domain/packet.h"
#include "domain/status.h"
#include "ledger/codec/ledger_codec.h"
#include "ledger/ledger.h"

namespace redpacket::ledger::codec {

// Columns, in order: packet_id, sender_id, kind, greeting, total_cents, count, expires_in_s,
// receiver_id, created_at_ms, expires_at_ms, status, refund_cents, shares (blob). The grabs are
// attached separately. A kind or status the domain does not know is kInternal (corrupt data).
template <class Row>
domain::Result<PacketRecord> PacketFromRow(const Row& row) {
  auto corrupt = [](std::string message) {
    return domain::MakeError(domain::ErrorCode::kInternal, std::move(message));
  };
  PacketRecord packet;
  packet.packet_id = row.Int(0);
  packet.spec.sender_id = row.Int(1);
  if (!domain::ParsePacketKind(row.Text(2), &packet.spec.kind)) {
    return corrupt(fmt::format("packet {}: unknown kind '{}'", packet.packet_id, row.Text(2)));
  }
  packet.spec.greeting = row.Text(3);
  packet.spec.total_cents = row.Int(4);
  packet.spec.count = row.Int(5);
  packet.spec.expires_in_s = row.Int(6);
  packet.spec.receiver_id = row.OptionalInt(7);
  packet.created_at = domain::FromUnixMillis(row.Int(8));
  packet.expires_at = domain::FromUnixMillis(row.Int(9));
  if (!domain::ParsePacketStatus(row.Text(10), &packet.status)) {
    return corrupt(fmt::format("packet {}: unknown status '{}'", packet.packet_id, row.Text(10)));
  }
  packet.refund_cents = row.OptionalInt(11);
  auto shares = DecodeShares(row.Blob(12), packet.packet_id, packet.spec.count);
  if (!shares.ok()) return shares.error();
  packet.shares = std::move(*shares);
  return packet;
}

// Columns, in order: packet_id, user_id, amount_cents, seq, grabbed_at_ms.
template <class Row>
domain::Grab GrabFromRow(const Row& row) {
  return domain::Grab{.user_id = row.Int(1),
                      .amount_cents = row.Int(2),
                      .seq = row.Int(3),
                      .grabbed_at = domain::FromUnixMillis(row.Int(4))};
}

}  // namespace redpacket::ledger::codec
