// The MariaDB ledger's reads: balance, history pages, packets with their grabs, the packets a
// restart reloads, and the audit facts (one consistent snapshot). Work on the primary and on a
// replica alike.
#include <fmt/format.h>

#include <algorithm>
#include <utility>

#include "ledger/codec/ledger_codec.h"
#include "ledger/codec/ledger_rows.h"
#include "ledger/mariadb/mariadb_ledger_impl.h"

namespace redpacket::ledger::mariadb {
namespace {

using domain::PacketStatus;

constexpr std::string_view kGrabColumns = "packet_id, user_id, amount_cents, seq, grabbed_at_ms";

// Each user's expected balance from the flows of money, next to the stored balance.
constexpr std::string_view kSelectAccountMismatches = R"sql(
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

// Appends each grab row (ordered by packet_id, seq) to its packet in `packets` (ordered by
// packet_id): one query for the grabs of all packets instead of one per packet.
template <class PacketWithGrabs>
Status AttachGrabs(Rows& grabs, std::vector<PacketWithGrabs>& packets) {
  std::size_t index = 0;
  while (grabs.Next()) {
    const PacketId packet_id = grabs.Int(0);
    while (index < packets.size() && packets[index].packet_id < packet_id) ++index;
    if (index == packets.size() || packets[index].packet_id != packet_id) {
      return Corrupt(fmt::format("a grab of packet {} that was not read", packet_id));
    }
    packets[index].grabs.push_back(ReadGrabRow(grabs));
  }
  return {};
}

}  // namespace

Result<PacketRecord> ReadPacketRow(const Rows& row) { return codec::PacketFromRow(row); }

domain::Grab ReadGrabRow(const Rows& row) { return codec::GrabFromRow(row); }

Result<Cents> MariaDbLedger::Balance(UserId user_id) {
  REDPACKET_MARIADB_TRY(connection_.EnsureConnected());
  return SelectInt(fmt::format("SELECT balance_cents FROM accounts WHERE user_id = {}", user_id),
                   0);
}

Result<HistoryPage> MariaDbLedger::History(UserId user_id, HistoryKind kind, int limit,
                                           std::string_view cursor) {
  auto before = codec::ParseCursor(cursor);
  if (!before.ok()) return before.error();
  limit = std::clamp(limit, 1, 100);
  REDPACKET_MARIADB_TRY(connection_.EnsureConnected());
  // One row more than the page: tells whether there is a next page without a cursor that leads
  // to an empty one.
  const std::string sql =
      kind == HistoryKind::kSent
          ? fmt::format(
                "SELECT packet_id, sender_id, kind, status, greeting, total_cents, count, "
                "created_at_ms, expires_at_ms, 0, 0, packet_id FROM packets "
                "WHERE sender_id = {} AND packet_id < {} ORDER BY packet_id DESC LIMIT {}",
                user_id, *before, limit + 1)
          : fmt::format(
                "SELECT p.packet_id, p.sender_id, p.kind, p.status, p.greeting, p.total_cents, "
                "p.count, g.grabbed_at_ms, p.expires_at_ms, g.amount_cents, g.seq, g.id "
                "FROM grabs AS g JOIN packets AS p ON p.packet_id = g.packet_id "
                "WHERE g.user_id = {} AND g.id < {} ORDER BY g.id DESC LIMIT {}",
                user_id, *before, limit + 1);
  auto rows = connection_.Query(sql);
  if (!rows.ok()) return rows.error();
  HistoryPage page;
  std::int64_t last_id = 0;
  while (rows->Next()) {
    if (page.items.size() == static_cast<std::size_t>(limit)) {
      page.next_cursor = std::to_string(last_id);
      break;
    }
    HistoryItem item;
    item.packet_id = rows->Int(0);
    item.sender_id = rows->Int(1);
    if (!domain::ParsePacketKind(rows->Text(2), &item.kind) ||
        !domain::ParsePacketStatus(rows->Text(3), &item.status)) {
      return Corrupt(fmt::format("packet {}: bad kind or status", item.packet_id));
    }
    item.greeting = rows->Text(4);
    item.total_cents = rows->Int(5);
    item.count = rows->Int(6);
    item.at = domain::FromUnixMillis(rows->Int(7));
    item.expires_at = domain::FromUnixMillis(rows->Int(8));
    item.amount_cents = rows->Int(9);
    item.seq = rows->Int(10);
    last_id = rows->Int(11);
    page.items.push_back(std::move(item));
  }
  return page;
}

Result<std::optional<PacketRecord>> MariaDbLedger::ReadPacket(PacketId packet_id) {
  auto rows = connection_.Query(fmt::format(
      "SELECT {} FROM packets AS p JOIN packet_shares AS s ON s.packet_id = p.packet_id "
      "WHERE p.packet_id = {}",
      kPacketColumns, packet_id));
  if (!rows.ok()) return rows.error();
  if (!rows->Next()) return std::optional<PacketRecord>();
  auto packet = ReadPacketRow(*rows);
  if (!packet.ok()) return packet.error();
  auto grabs = connection_.Query(fmt::format(
      "SELECT {} FROM grabs WHERE packet_id = {} ORDER BY seq", kGrabColumns, packet_id));
  if (!grabs.ok()) return grabs.error();
  while (grabs->Next()) packet->grabs.push_back(ReadGrabRow(*grabs));
  return std::optional<PacketRecord>(std::move(*packet));
}

Result<std::optional<PacketRecord>> MariaDbLedger::GetPacket(PacketId packet_id) {
  auto transaction = Transaction::Begin(connection_, Transaction::Mode::kReadSnapshot);
  if (!transaction.ok()) return transaction.error();
  auto packet = ReadPacket(packet_id);
  if (!packet.ok()) return packet.error();
  REDPACKET_MARIADB_TRY(transaction->Commit());
  return packet;
}

Result<std::vector<PacketRecord>> MariaDbLedger::LoadUnfinishedPackets() {
  auto transaction = Transaction::Begin(connection_, Transaction::Mode::kReadSnapshot);
  if (!transaction.ok()) return transaction.error();
  auto rows = connection_.Query(fmt::format(
      "SELECT {} FROM packets AS p JOIN packet_shares AS s ON s.packet_id = p.packet_id "
      "WHERE p.status IN ('open', 'expired') ORDER BY p.packet_id",
      kPacketColumns));
  if (!rows.ok()) return rows.error();
  std::vector<PacketRecord> packets;
  while (rows->Next()) {
    auto packet = ReadPacketRow(*rows);
    if (!packet.ok()) return packet.error();
    packets.push_back(std::move(*packet));
  }
  auto grabs = connection_.Query(
      "SELECT g.packet_id, g.user_id, g.amount_cents, g.seq, g.grabbed_at_ms FROM grabs AS g "
      "JOIN packets AS p ON p.packet_id = g.packet_id WHERE p.status IN ('open', 'expired') "
      "ORDER BY g.packet_id, g.seq");
  if (!grabs.ok()) return grabs.error();
  REDPACKET_MARIADB_TRY(AttachGrabs(*grabs, packets));
  REDPACKET_MARIADB_TRY(transaction->Commit());
  return packets;
}

Result<std::vector<PacketProgress>> MariaDbLedger::ListUnfinishedPackets() {
  auto rows = connection_.Query(
      "SELECT packet_id, status, grabbed_count FROM packets WHERE status IN ('open', 'expired') "
      "ORDER BY packet_id");
  if (!rows.ok()) return rows.error();
  std::vector<PacketProgress> packets;
  while (rows->Next()) {
    PacketProgress packet{rows->Int(0), domain::PacketStatus::kOpen, rows->Int(2)};
    if (!domain::ParsePacketStatus(rows->Text(1), &packet.status)) {
      return domain::MakeError(domain::ErrorCode::kInternal,
                               fmt::format("packet {}: unknown status '{}'", packet.packet_id,
                                           rows->Text(1)));
    }
    packets.push_back(packet);
  }
  return packets;
}

Result<AuditFacts> MariaDbLedger::ReadAuditFacts() {
  // One snapshot: every fact below comes from the same state, so a concurrent ApplyEvents
  // cannot make the sums disagree.
  auto transaction = Transaction::Begin(connection_, Transaction::Mode::kReadSnapshot);
  if (!transaction.ok()) return transaction.error();
  AuditFacts facts;
  auto deposits = SelectInt("SELECT coalesce(sum(amount_cents), 0) FROM deposits", 0);
  if (!deposits.ok()) return deposits.error();
  facts.deposits_cents = *deposits;
  auto balances = SelectInt("SELECT coalesce(sum(balance_cents), 0) FROM accounts", 0);
  if (!balances.ok()) return balances.error();
  facts.balances_cents = *balances;

  auto packets = connection_.Query(
      "SELECT p.packet_id, p.sender_id, p.total_cents, p.count, p.status, p.refund_cents, "
      "s.shares FROM packets AS p JOIN packet_shares AS s ON s.packet_id = p.packet_id "
      "ORDER BY p.packet_id");
  if (!packets.ok()) return packets.error();
  while (packets->Next()) {
    AuditFacts::Packet packet{.packet_id = packets->Int(0),
                              .sender_id = packets->Int(1),
                              .total_cents = packets->Int(2),
                              .count = packets->Int(3),
                              .status = PacketStatus::kOpen,
                              .shares = {},
                              .grabs = {},
                              .refund_cents = packets->OptionalInt(5)};
    if (!domain::ParsePacketStatus(packets->Text(4), &packet.status)) {
      return Corrupt(fmt::format("packet {}: bad status", packet.packet_id));
    }
    auto shares = codec::DecodeShares(packets->Blob(6), packet.packet_id, packet.count);
    if (!shares.ok()) return shares.error();
    packet.shares = std::move(*shares);
    facts.packets.push_back(std::move(packet));
  }
  auto grabs =
      connection_.Query(fmt::format("SELECT {} FROM grabs ORDER BY packet_id, seq", kGrabColumns));
  if (!grabs.ok()) return grabs.error();
  REDPACKET_MARIADB_TRY(AttachGrabs(*grabs, facts.packets));

  auto mismatches = connection_.Query(kSelectAccountMismatches);
  if (!mismatches.ok()) return mismatches.error();
  while (mismatches->Next()) {
    facts.account_mismatches.push_back(AuditFacts::Mismatch{.user_id = mismatches->Int(0),
                                                            .balance_cents = mismatches->Int(1),
                                                            .expected_cents = mismatches->Int(2)});
  }
  auto offsets = ReadAppliedOffsets();
  if (!offsets.ok()) return offsets.error();
  facts.applied_offsets = std::move(*offsets);
  auto dead_letters = connection_.Query(
      "SELECT partition_id, offset_value, coalesce(event_id, ''), payload, reason, at_ms "
      "FROM dead_letters ORDER BY stream, partition_id, offset_value");
  if (!dead_letters.ok()) return dead_letters.error();
  while (dead_letters->Next()) {
    facts.set_aside.push_back(
        SetAsideRecord{.partition = static_cast<std::int32_t>(dead_letters->Int(0)),
                       .offset = static_cast<std::uint64_t>(dead_letters->Int(1)),
                       .event_id = dead_letters->Text(2),
                       .payload = dead_letters->Text(3),
                       .reason = dead_letters->Text(4),
                       .at = domain::FromUnixMillis(dead_letters->Int(5))});
  }
  REDPACKET_MARIADB_TRY(transaction->Commit());
  return facts;
}

}  // namespace redpacket::ledger::mariadb
