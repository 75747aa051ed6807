// ApplyEvents on MariaDB: one transaction per batch, exactly once by the unique keys of grabs and
// refunds, every event checked by domain::CheckEvent (a refusal is kRefused), multi-row statements
// instead of a round trip per event, offsets recorded with GREATEST so they never move back.
// SetAside: a refused message kept in dead_letters with its offsets, in one transaction.
#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <set>
#include <utility>

#include "domain/event_rules.h"
#include "ledger/codec/ledger_codec.h"
#include "ledger/mariadb/mariadb_ledger_impl.h"

namespace redpacket::ledger::mariadb {
namespace {

using domain::ErrorCode;
using domain::LedgerEvent;
using domain::MakeError;

// Rows per multi-row INSERT: keeps every statement far below max_allowed_packet.
constexpr std::size_t kRowsPerStatement = 1000;

std::string JoinIds(auto begin, auto end) {
  std::string joined;
  for (auto it = begin; it != end; ++it) {
    if (!joined.empty()) joined += ',';
    joined += std::to_string(*it);
  }
  return joined;
}

// Runs `prefix` + rows[i..] + `suffix` in chunks of kRowsPerStatement rows.
Status InsertRows(Connection& connection, std::string_view prefix,
                  const std::vector<std::string>& rows, std::string_view suffix) {
  for (std::size_t start = 0; start < rows.size(); start += kRowsPerStatement) {
    std::string sql(prefix);
    const std::size_t end = std::min(rows.size(), start + kRowsPerStatement);
    for (std::size_t i = start; i < end; ++i) {
      if (i != start) sql += ',';
      sql += rows[i];
    }
    sql += suffix;
    auto inserted = connection.Execute(sql);
    if (!inserted.ok()) return inserted.error();
  }
  return {};
}

}  // namespace

Status MariaDbLedger::LockPackets(const std::vector<PacketId>& packet_ids) {
  if (packet_ids.empty()) return {};
  auto locked = connection_.Query(fmt::format(
      "SELECT packet_id FROM packets WHERE packet_id IN ({}) ORDER BY packet_id FOR UPDATE",
      JoinIds(packet_ids.begin(), packet_ids.end())));
  if (!locked.ok()) return locked.error();
  std::vector<PacketId> missing;
  for (PacketId id : packet_ids) {
    if (!shapes_.Contains(id)) missing.push_back(id);
  }
  if (missing.empty()) return {};
  auto rows = connection_.Query(
      fmt::format("{} IN ({})", codec::kSelectShapes, JoinIds(missing.begin(), missing.end())));
  if (!rows.ok()) return rows.error();
  while (rows->Next()) {
    auto shape = codec::ShapeFromRow(*rows);
    if (!shape.ok()) return shape.error();
    shapes_.Insert(rows->Int(0), std::move(*shape));
  }
  return {};
}

Status MariaDbLedger::ApplyEvents(std::span<const LedgerEvent> events,
                                  const domain::PartitionOffsets& applied) {
  REDPACKET_MARIADB_TRY(codec::CheckOffsets(applied));
  auto transaction = Transaction::Begin(connection_, Transaction::Mode::kWrite);
  if (!transaction.ok()) return transaction.error();
  if (Status status = ApplyEventsIn(events, applied); !status.ok()) {
    // A statement that broke a CHECK (a packet paying out more than it holds) or went out of
    // BIGINT's range (a balance past it): the event, not the ledger. Read before the rollback.
    if (status.error().code == ErrorCode::kInternal &&
        (connection_.last_error_number() == kErrorCheckFailed ||
         connection_.last_error_number() == kErrorOutOfRange)) {
      return domain::Refused(status.error().message);
    }
    return status;
  }
  return transaction->Commit();
}

Status MariaDbLedger::SetAside(const SetAsideRecord& record,
                               const domain::PartitionOffsets& applied) {
  REDPACKET_MARIADB_TRY(codec::CheckOffsets(applied));
  auto transaction = Transaction::Begin(connection_, Transaction::Mode::kWrite);
  if (!transaction.ok()) return transaction.error();
  // A repeat (the message redelivered after a crash before the offset commit) keeps the first.
  REDPACKET_MARIADB_TRY(connection_.Execute(fmt::format(
      "INSERT IGNORE INTO dead_letters (stream, partition_id, offset_value, event_id, payload, "
      "reason, at_ms) VALUES ({}, {}, {}, {}, {}, {}, {})",
      connection_.Quote(connection_.options().stream), record.partition, record.offset,
      record.event_id.empty() ? std::string("NULL") : connection_.Quote(record.event_id),
      HexLiteral(std::as_bytes(std::span(record.payload))), connection_.Quote(record.reason),
      domain::ToUnixMillis(record.at))));
  REDPACKET_MARIADB_TRY(RecordOffsets(applied));
  return transaction->Commit();
}

Status MariaDbLedger::RecordOffsets(const domain::PartitionOffsets& applied) {
  std::vector<std::string> offset_rows;
  for (const auto& [partition, offset] : applied) {
    offset_rows.push_back(fmt::format("({},{},{})", connection_.Quote(connection_.options().stream),
                                      partition, offset));
  }
  return InsertRows(
      connection_, "INSERT INTO applied_offsets (stream, partition_id, offset_value) VALUES ",
      offset_rows,
      " ON DUPLICATE KEY UPDATE offset_value = GREATEST(offset_value, VALUES(offset_value))");
}

Status MariaDbLedger::ApplyEventsIn(std::span<const LedgerEvent> events,
                                    const domain::PartitionOffsets& applied) {
  std::set<PacketId> packet_ids;
  for (const LedgerEvent& event : events) packet_ids.insert(event.packet_id);
  const std::vector<PacketId> sorted_ids(packet_ids.begin(), packet_ids.end());
  REDPACKET_MARIADB_TRY(LockPackets(sorted_ids));
  // A small cache may have dropped a shape loaded a moment ago: the packets are locked now, so
  // their shapes (immutable) are read again from the rows we hold.
  for (PacketId id : sorted_ids) {
    if (!shapes_.Contains(id)) {
      shapes_.Clear();
      REDPACKET_MARIADB_TRY(LockPackets(sorted_ids));
      break;
    }
  }

  // What was applied before, read under the packet locks: a concurrent batch of the same events
  // waits on those locks and then sees this one's rows.
  std::set<std::pair<PacketId, UserId>> grabbed;
  std::set<PacketId> refunded;
  {
    std::map<PacketId, std::set<UserId>> grabbers;
    for (const LedgerEvent& event : events) {
      if (event.type == LedgerEvent::Type::kGrab && shapes_.Contains(event.packet_id)) {
        grabbers[event.packet_id].insert(event.user_id);
      }
    }
    for (const auto& [packet_id, users] : grabbers) {
      auto rows = connection_.Query(
          fmt::format("SELECT user_id FROM grabs WHERE packet_id = {} AND user_id IN ({})",
                      packet_id, JoinIds(users.begin(), users.end())));
      if (!rows.ok()) return rows.error();
      while (rows->Next()) grabbed.emplace(packet_id, rows->Int(0));
    }
    if (!sorted_ids.empty()) {
      auto rows =
          connection_.Query(fmt::format("SELECT packet_id FROM refunds WHERE packet_id IN ({})",
                                        JoinIds(sorted_ids.begin(), sorted_ids.end())));
      if (!rows.ok()) return rows.error();
      while (rows->Next()) refunded.insert(rows->Int(0));
    }
  }

  codec::PacketDeltas deltas;
  std::map<UserId, Cents> credits;  // in user order: concurrent batches lock accounts alike
  std::vector<std::string> grab_rows;
  std::vector<std::string> refund_rows;
  for (const LedgerEvent& event : events) {
    REDPACKET_MARIADB_TRY(domain::CheckEvent(event, shapes_.Find(event.packet_id)));
    if (event.type == LedgerEvent::Type::kGrab) {
      // Only (packet_id, user_id) makes a repeat; a second user on the same seq is left to the
      // UNIQUE (packet_id, seq) key below, which fails the batch.
      if (!grabbed.emplace(event.packet_id, event.user_id).second) continue;
      grab_rows.push_back(fmt::format("({},{},{},{},{})", event.packet_id, event.user_id,
                                      event.amount_cents, event.seq, event.at_millis));
    } else {
      if (!refunded.insert(event.packet_id).second) continue;  // refunded before
      refund_rows.push_back(fmt::format("({},{},{},{})", event.packet_id, event.user_id,
                                        event.amount_cents, event.at_millis));
    }
    credits[event.user_id] += event.amount_cents;
    deltas.Add(event);
  }

  auto grabs_inserted =
      InsertRows(connection_,
                 "INSERT INTO grabs (packet_id, user_id, amount_cents, seq, grabbed_at_ms) VALUES ",
                 grab_rows, "");
  if (!grabs_inserted.ok()) {
    // Every (packet_id, user_id) of the batch was checked above, under the packet locks: a
    // duplicate now is two users paid the same share.
    if (connection_.last_error_number() == kErrorDuplicateKey) {
      return domain::Refused(
          fmt::format("two grabs of one share: {}", grabs_inserted.error().message));
    }
    return grabs_inserted.error();
  }
  REDPACKET_MARIADB_TRY(InsertRows(
      connection_, "INSERT INTO refunds (packet_id, user_id, amount_cents, at_ms) VALUES ",
      refund_rows, ""));
  std::vector<std::string> credit_rows;
  for (const auto& [user_id, cents] : credits) {
    if (cents > 0) credit_rows.push_back(fmt::format("({},'',{})", user_id, cents));
  }
  // Creates the account on its first credit.
  REDPACKET_MARIADB_TRY(InsertRows(
      connection_, "INSERT INTO accounts (user_id, name, balance_cents) VALUES ", credit_rows,
      " ON DUPLICATE KEY UPDATE balance_cents = balance_cents + VALUES(balance_cents)"));
  // One UPDATE per packet rather than one per event: a hot packet takes most of a batch's grabs.
  for (const auto& [packet_id, delta] : deltas.by_packet()) {
    const std::string refund = SqlInt(delta.refund_cents);
    REDPACKET_MARIADB_TRY(connection_.Execute(fmt::format(
        "UPDATE packets SET "
        "status = CASE WHEN {2} IS NOT NULL THEN 'refunded' "
        "WHEN status IN ('open', 'expired') AND grabbed_count + {0} = count THEN 'exhausted' "
        "ELSE status END, "
        "grabbed_count = grabbed_count + {0}, grabbed_cents = grabbed_cents + {1}, "
        "refund_cents = coalesce({2}, refund_cents) WHERE packet_id = {3}",
        delta.grabs, delta.grabbed_cents, refund, packet_id)));
  }
  return RecordOffsets(applied);
}

Result<domain::PartitionOffsets> MariaDbLedger::AppliedOffsets() {
  REDPACKET_MARIADB_TRY(connection_.EnsureConnected());
  return ReadAppliedOffsets();
}

Result<domain::PartitionOffsets> MariaDbLedger::ReadAppliedOffsets() {
  auto rows = connection_.Query(
      fmt::format("SELECT partition_id, offset_value FROM applied_offsets WHERE stream = {}",
                  connection_.Quote(connection_.options().stream)));
  if (!rows.ok()) return rows.error();
  domain::PartitionOffsets offsets;
  while (rows->Next()) {
    offsets[static_cast<std::int32_t>(rows->Int(0))] = static_cast<std::uint64_t>(rows->Int(1));
  }
  return offsets;
}

}  // namespace redpacket::ledger::mariadb
