// The reads every SQL ledger makes, written once over the ledger's way to run a statement:
// `run(sql, {integer arguments})` returns Result<Rows>, whose rows step with Step() (SQLite:
// Result<bool>) or Next() (MariaDB: bool) and read as ledger_rows.h says. The caller holds the
// transaction that makes several reads agree. Blocking as `run` is; not thread-safe.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ledger/codec/ledger_codec.h"
#include "ledger/codec/ledger_rows.h"

namespace redpacket::ledger::codec {

// Runs `read(run)` (run: a Statements of the ledger) in the transaction `transaction` (as
// Transaction::Begin returned it, in a mode whose statements all see one snapshot), and commits
// it: every statement of the read sees the same state. What `read` returned, or the first error.
template <class Statements, class Connection, class Transaction, class Read>
auto ReadInOneSnapshot(Connection& connection, domain::Result<Transaction> transaction, Read read)
    -> decltype(read(std::declval<Statements&>())) {
  if (!transaction.ok()) return transaction.error();
  Statements run{connection};
  auto result = read(run);
  if (!result.ok()) return result;
  if (domain::Status committed = transaction->Commit(); !committed.ok()) return committed.error();
  return result;
}

// Steps to the next row: true when there is one.
template <class Rows>
domain::Result<bool> NextRow(Rows& rows) {
  if constexpr (requires { rows.Step(); }) {
    return rows.Step();
  } else {
    return rows.Next();
  }
}

// Calls `each(rows)` (a Status) on every row; stops at the first error, its or the database's.
template <class Rows, class Each>
domain::Status ForEachRow(Rows& rows, Each each) {
  while (true) {
    auto row = NextRow(rows);
    if (!row.ok()) return row.error();
    if (!*row) return {};
    if (domain::Status status = each(rows); !status.ok()) return status;
  }
}

// Every row of `sql` read by `read` (Result<T> or T from a row), in order.
template <class T, class Run, class Read>
domain::Result<std::vector<T>> SelectAll(Run& run, std::string_view sql, Read read) {
  auto rows = run(sql, {});
  if (!rows.ok()) return rows.error();
  std::vector<T> all;
  domain::Status status = ForEachRow(*rows, [&](const auto& row) -> domain::Status {
    auto item = read(row);
    if constexpr (requires { item.ok(); }) {
      if (!item.ok()) return item.error();
      all.push_back(std::move(*item));
    } else {
      all.push_back(std::move(item));
    }
    return {};
  });
  if (!status.ok()) return status.error();
  return all;
}

// The one integer `sql` selects, or `absent` when it selects no row (or NULL).
template <class Run>
domain::Result<std::int64_t> SelectInt(Run& run, std::string_view sql,
                                       std::initializer_list<std::int64_t> arguments,
                                       std::int64_t absent) {
  auto rows = run(sql, arguments);
  if (!rows.ok()) return rows.error();
  auto row = NextRow(*rows);
  if (!row.ok()) return row.error();
  if (!*row) return absent;
  return rows->OptionalInt(0).value_or(absent);
}

// Appends each grab row (ordered by packet_id, seq) to its packet in `packets` (ordered by
// packet_id): one query for the grabs of all packets instead of one per packet.
template <class Run, class PacketWithGrabs>
domain::Status AttachGrabs(Run& run, std::string_view sql, std::vector<PacketWithGrabs>& packets) {
  auto grabs = run(sql, {});
  if (!grabs.ok()) return grabs.error();
  std::size_t index = 0;
  return ForEachRow(*grabs, [&](const auto& row) -> domain::Status {
    const domain::PacketId packet_id = row.Int(0);
    while (index < packets.size() && packets[index].packet_id < packet_id) ++index;
    if (index == packets.size() || packets[index].packet_id != packet_id) {
      return Corrupt(fmt::format("a grab of packet {} that was not read", packet_id));
    }
    packets[index].grabs.push_back(GrabFromRow(row));
    return {};
  });
}

// The packet with its grabs, or nullopt for an unknown id.
template <class Run>
domain::Result<std::optional<PacketRecord>> ReadPacket(Run& run, domain::PacketId packet_id) {
  auto rows = run(kSelectPacket, {packet_id});
  if (!rows.ok()) return rows.error();
  auto row = NextRow(*rows);
  if (!row.ok()) return row.error();
  if (!*row) return std::optional<PacketRecord>();
  auto packet = PacketFromRow(*rows);
  if (!packet.ok()) return packet.error();
  auto grabs = run(kSelectGrabsOfPacket, {packet_id});
  if (!grabs.ok()) return grabs.error();
  domain::Status read = ForEachRow(*grabs, [&](const auto& grab) -> domain::Status {
    packet->grabs.push_back(GrabFromRow(grab));
    return {};
  });
  if (!read.ok()) return read.error();
  return std::optional<PacketRecord>(std::move(*packet));
}

// LedgerReader::LoadUnfinishedPackets: the open and expired packets with shares and grabs.
template <class Run>
domain::Result<std::vector<PacketRecord>> ReadUnfinishedPackets(Run& run) {
  auto packets = SelectAll<PacketRecord>(run, kSelectUnfinishedPackets,
                                         [](const auto& row) { return PacketFromRow(row); });
  if (!packets.ok()) return packets.error();
  domain::Status grabs = AttachGrabs(run, kSelectGrabsOfUnfinishedPackets, *packets);
  if (!grabs.ok()) return grabs.error();
  return packets;
}

// LedgerReader::ListUnfinishedPackets.
template <class Run>
domain::Result<std::vector<PacketProgress>> ReadUnfinishedProgress(Run& run) {
  return SelectAll<PacketProgress>(run, kSelectUnfinishedProgress,
                                   [](const auto& row) { return ProgressFromRow(row); });
}

// LedgerReader::History: one page, newest first. A malformed cursor is kBadRequest.
template <class Run>
domain::Result<HistoryPage> ReadHistory(Run& run, domain::UserId user_id, HistoryKind kind,
                                        int limit, std::string_view cursor) {
  auto before = ParseCursor(cursor);
  if (!before.ok()) return before.error();
  limit = std::clamp(limit, 1, 100);
  // One row more than the page: tells whether there is a next page without a cursor that leads
  // to an empty one.
  auto rows = run(kind == HistoryKind::kSent ? kSelectSentHistory : kSelectReceivedHistory,
                  {user_id, *before, std::int64_t{limit} + 1});
  if (!rows.ok()) return rows.error();
  HistoryPage page;
  std::int64_t last_id = 0;
  while (true) {
    auto row = NextRow(*rows);
    if (!row.ok()) return row.error();
    if (!*row) break;
    if (page.items.size() == static_cast<std::size_t>(limit)) {
      page.next_cursor = std::to_string(last_id);
      break;
    }
    auto item = HistoryItemFromRow(*rows);
    if (!item.ok()) return item.error();
    last_id = rows->Int(11);
    page.items.push_back(std::move(*item));
  }
  return page;
}

// LedgerReader::ReadAuditFacts: sums, packets with shares and grabs, account mismatches,
// set-aside messages, and the applied offsets as `read_offsets()` (the ledger's own table)
// returns them. The caller's transaction makes them one snapshot.
template <class Run, class ReadOffsets>
domain::Result<AuditFacts> ReadAuditFacts(Run& run, ReadOffsets read_offsets) {
  AuditFacts facts;
  auto deposits = SelectInt(run, "SELECT coalesce(sum(amount_cents), 0) FROM deposits", {}, 0);
  if (!deposits.ok()) return deposits.error();
  facts.deposits_cents = *deposits;
  auto balances = SelectInt(run, "SELECT coalesce(sum(balance_cents), 0) FROM accounts", {}, 0);
  if (!balances.ok()) return balances.error();
  facts.balances_cents = *balances;
  auto packets = SelectAll<AuditFacts::Packet>(
      run, kSelectAuditPackets, [](const auto& row) { return AuditPacketFromRow(row); });
  if (!packets.ok()) return packets.error();
  facts.packets = std::move(*packets);
  domain::Status grabs = AttachGrabs(run, kSelectAllGrabs, facts.packets);
  if (!grabs.ok()) return grabs.error();
  auto mismatches = SelectAll<AuditFacts::Mismatch>(
      run, kSelectAccountMismatches, [](const auto& row) { return MismatchFromRow(row); });
  if (!mismatches.ok()) return mismatches.error();
  facts.account_mismatches = std::move(*mismatches);
  auto set_aside = SelectAll<SetAsideRecord>(run, kSelectSetAside,
                                             [](const auto& row) { return SetAsideFromRow(row); });
  if (!set_aside.ok()) return set_aside.error();
  facts.set_aside = std::move(*set_aside);
  auto offsets = read_offsets();
  if (!offsets.ok()) return offsets.error();
  facts.applied_offsets = std::move(*offsets);
  return facts;
}

}  // namespace redpacket::ledger::codec
