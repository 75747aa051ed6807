// Rows of the ledger's tables as every SQL ledger selects them, turned into records: the SQL
// texts (the same in SQLite and MariaDB; `?` marks an integer argument) and one reader per kind
// of row. Templates over the row type: SQLite's Query and MariaDB's Rows both offer Int,
// OptionalInt, Text and Blob by column index. Pure; thread-safe.
#pragma once

#include <fmt/format.h>

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

#include "domain/event_rules.h"
#include "domain/packet.h"
#include "domain/records.h"
#include "domain/status.h"
#include "ledger/codec/ledger_codec.h"
#include "ledger/ledger.h"

namespace redpacket::ledger::codec {

// ---- SQL ----

// What PacketFromRow reads, from `packets AS p` joined with `packet_shares AS s`.
#define REDPACKET_SELECT_PACKETS                                                                \
  "SELECT p.packet_id, p.sender_id, p.kind, p.greeting, p.total_cents, p.count, "               \
  "p.expires_in_s, p.receiver_id, p.created_at_ms, p.expires_at_ms, p.status, p.refund_cents, " \
  "s.shares FROM packets AS p JOIN packet_shares AS s ON s.packet_id = p.packet_id "
inline constexpr char kSelectPacket[] = REDPACKET_SELECT_PACKETS "WHERE p.packet_id = ?";
inline constexpr char kSelectUnfinishedPackets[] =
    REDPACKET_SELECT_PACKETS "WHERE p.status IN ('open', 'expired') ORDER BY p.packet_id";
#undef REDPACKET_SELECT_PACKETS

// What GrabFromRow reads (packet_id first).
inline constexpr char kSelectGrabsOfPacket[] =
    "SELECT packet_id, user_id, amount_cents, seq, grabbed_at_ms FROM grabs WHERE packet_id = ? "
    "ORDER BY seq";
inline constexpr char kSelectGrabsOfUnfinishedPackets[] =
    "SELECT g.packet_id, g.user_id, g.amount_cents, g.seq, g.grabbed_at_ms FROM grabs AS g "
    "JOIN packets AS p ON p.packet_id = g.packet_id WHERE p.status IN ('open', 'expired') "
    "ORDER BY g.packet_id, g.seq";
inline constexpr char kSelectAllGrabs[] =
    "SELECT packet_id, user_id, amount_cents, seq, grabbed_at_ms FROM grabs "
    "ORDER BY packet_id, seq";

// What ShapeFromRow reads; the MariaDB ledger appends the ids of a batch's packets.
inline constexpr char kSelectShapes[] =
    "SELECT p.packet_id, p.sender_id, p.total_cents, p.count, s.shares FROM packets AS p "
    "JOIN packet_shares AS s ON s.packet_id = p.packet_id WHERE p.packet_id ";

// What ProgressFromRow reads.
inline constexpr char kSelectUnfinishedProgress[] =
    "SELECT packet_id, status, grabbed_count FROM packets WHERE status IN ('open', 'expired') "
    "ORDER BY packet_id";

// What HistoryItemFromRow reads: (user, before, limit) for both kinds, newest first.
inline constexpr char kSelectSentHistory[] =
    "SELECT packet_id, sender_id, kind, status, greeting, total_cents, count, "
    "created_at_ms, expires_at_ms, 0, 0, packet_id FROM packets "
    "WHERE sender_id = ? AND packet_id < ? ORDER BY packet_id DESC LIMIT ?";
inline constexpr char kSelectReceivedHistory[] =
    "SELECT p.packet_id, p.sender_id, p.kind, p.status, p.greeting, p.total_cents, "
    "p.count, g.grabbed_at_ms, p.expires_at_ms, g.amount_cents, g.seq, g.id "
    "FROM grabs AS g JOIN packets AS p ON p.packet_id = g.packet_id "
    "WHERE g.user_id = ? AND g.id < ? ORDER BY g.id DESC LIMIT ?";

// What AuditPacketFromRow reads.
inline constexpr char kSelectAuditPackets[] =
    "SELECT p.packet_id, p.sender_id, p.total_cents, p.count, p.status, p.refund_cents, "
    "s.shares FROM packets AS p JOIN packet_shares AS s ON s.packet_id = p.packet_id "
    "ORDER BY p.packet_id";

// What MismatchFromRow reads: each user's expected balance from the flows of money, next to the
// stored balance, where they differ.
inline constexpr char kSelectAccountMismatches[] = R"sql(
WITH flows (user_id, cents) AS (
  SELECT user_id, amount_cents FROM deposits
  UNION ALL SELECT sender_id, -total_cents FROM packets
  UNION ALL SELECT user_id, amount_cents FROM grabs
  UNION ALL SELECT user_id, amount_cents FROM refunds),
expected (user_id, cents) AS (SELECT user_id, sum(cents) FROM flows GROUP BY user_id)
SELECT a.user_id, a.balance_cents, coalesce(e.cents, 0)
  FROM accounts AS a LEFT JOIN expected AS e ON e.user_id = a.user_id
  WHERE a.balance_cents <> coalesce(e.cents, 0)
UNION ALL
SELECT e.user_id, 0, e.cents FROM expected AS e
  WHERE e.cents <> 0 AND NOT EXISTS (SELECT 1 FROM accounts AS a WHERE a.user_id = e.user_id)
ORDER BY 1)sql";

// What SetAsideFromRow reads: every stream's set-aside messages.
inline constexpr char kSelectSetAside[] =
    "SELECT partition_id, offset_value, coalesce(event_id, ''), payload, reason, at_ms "
    "FROM dead_letters ORDER BY stream, partition_id, offset_value";

// `sql` with each `?` replaced by the next of `arguments`, for a database driven by statement
// text (MariaDB's text protocol). Integers only, so nothing needs quoting.
inline std::string WithArguments(std::string_view sql,
                                 std::initializer_list<std::int64_t> arguments) {
  std::string text;
  text.reserve(sql.size() + 20 * arguments.size());
  auto next = arguments.begin();
  for (char c : sql) {
    if (c == '?' && next != arguments.end()) {
      text += std::to_string(*next++);
    } else {
      text += c;
    }
  }
  return text;
}

// ---- Rows ----

// Columns, in order: packet_id, sender_id, kind, greeting, total_cents, count, expires_in_s,
// receiver_id, created_at_ms, expires_at_ms, status, refund_cents, shares (blob). The grabs are
// attached separately. A kind or status the domain does not know is kInternal (corrupt data).
template <class Row>
domain::Result<PacketRecord> PacketFromRow(const Row& row) {
  PacketRecord packet;
  packet.packet_id = row.Int(0);
  packet.spec.sender_id = row.Int(1);
  if (!domain::ParsePacketKind(row.Text(2), &packet.spec.kind)) {
    return Corrupt(fmt::format("packet {}: unknown kind '{}'", packet.packet_id, row.Text(2)));
  }
  packet.spec.greeting = row.Text(3);
  packet.spec.total_cents = row.Int(4);
  packet.spec.count = row.Int(5);
  packet.spec.expires_in_s = row.Int(6);
  packet.spec.receiver_id = row.OptionalInt(7);
  packet.created_at = domain::FromUnixMillis(row.Int(8));
  packet.expires_at = domain::FromUnixMillis(row.Int(9));
  if (!domain::ParsePacketStatus(row.Text(10), &packet.status)) {
    return Corrupt(fmt::format("packet {}: unknown status '{}'", packet.packet_id, row.Text(10)));
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

// Columns, in order: packet_id, sender_id, total_cents, count, shares (blob).
template <class Row>
domain::Result<domain::PacketShape> ShapeFromRow(const Row& row) {
  auto shares = DecodeShares(row.Blob(4), row.Int(0), row.Int(3));
  if (!shares.ok()) return shares.error();
  return domain::PacketShape{
      .sender_id = row.Int(1), .total_cents = row.Int(2), .shares = std::move(*shares)};
}

// Columns, in order: packet_id, status, grabbed_count.
template <class Row>
domain::Result<PacketProgress> ProgressFromRow(const Row& row) {
  PacketProgress packet{row.Int(0), domain::PacketStatus::kOpen, row.Int(2)};
  if (!domain::ParsePacketStatus(row.Text(1), &packet.status)) {
    return Corrupt(fmt::format("packet {}: unknown status '{}'", packet.packet_id, row.Text(1)));
  }
  return packet;
}

// Columns of kSelectSentHistory / kSelectReceivedHistory; the last (11) is the cursor's id.
template <class Row>
domain::Result<HistoryItem> HistoryItemFromRow(const Row& row) {
  HistoryItem item;
  item.packet_id = row.Int(0);
  item.sender_id = row.Int(1);
  if (!domain::ParsePacketKind(row.Text(2), &item.kind) ||
      !domain::ParsePacketStatus(row.Text(3), &item.status)) {
    return Corrupt(fmt::format("packet {}: bad kind or status", item.packet_id));
  }
  item.greeting = row.Text(4);
  item.total_cents = row.Int(5);
  item.count = row.Int(6);
  item.at = domain::FromUnixMillis(row.Int(7));
  item.expires_at = domain::FromUnixMillis(row.Int(8));
  item.amount_cents = row.Int(9);
  item.seq = row.Int(10);
  return item;
}

// Columns of kSelectAuditPackets; the grabs are attached separately.
template <class Row>
domain::Result<AuditFacts::Packet> AuditPacketFromRow(const Row& row) {
  AuditFacts::Packet packet{.packet_id = row.Int(0),
                            .sender_id = row.Int(1),
                            .total_cents = row.Int(2),
                            .count = row.Int(3),
                            .status = domain::PacketStatus::kOpen,
                            .shares = {},
                            .grabs = {},
                            .refund_cents = row.OptionalInt(5)};
  if (!domain::ParsePacketStatus(row.Text(4), &packet.status)) {
    return Corrupt(fmt::format("packet {}: bad status", packet.packet_id));
  }
  auto shares = DecodeShares(row.Blob(6), packet.packet_id, packet.count);
  if (!shares.ok()) return shares.error();
  packet.shares = std::move(*shares);
  return packet;
}

// Columns of kSelectAccountMismatches.
template <class Row>
AuditFacts::Mismatch MismatchFromRow(const Row& row) {
  return AuditFacts::Mismatch{
      .user_id = row.Int(0), .balance_cents = row.Int(1), .expected_cents = row.Int(2)};
}

// Columns of kSelectSetAside.
template <class Row>
SetAsideRecord SetAsideFromRow(const Row& row) {
  return SetAsideRecord{.partition = static_cast<std::int32_t>(row.Int(0)),
                        .offset = static_cast<std::uint64_t>(row.Int(1)),
                        .event_id = row.Text(2),
                        .payload = row.Text(3),
                        .reason = row.Text(4),
                        .at = domain::FromUnixMillis(row.Int(5))};
}

}  // namespace redpacket::ledger::codec
