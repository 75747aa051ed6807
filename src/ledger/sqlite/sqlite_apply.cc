// The SQLite ledger's event application: ApplyEvents (one transaction per batch, exactly once by
// the unique keys of grabs and refunds, every event checked by domain::CheckEvent), SetAside (a
// refused message kept in dead_letters) and the applied offsets, recorded with either and never
// moved back.
#include <fmt/format.h>
#include <sqlite3.h>

#include <charconv>
#include <string>
#include <utility>

#include "domain/event_rules.h"
#include "ledger/codec/ledger_codec.h"
#include "ledger/codec/ledger_rows.h"
#include "ledger/sqlite/sqlite_ledger_impl.h"

namespace redpacket::ledger::sqlite {

using domain::ErrorCode;
using domain::LedgerEvent;
using domain::MakeError;

Status SqliteLedger::ApplyEvents(std::span<const LedgerEvent> events,
                                 const domain::PartitionOffsets& applied) {
  REDPACKET_SQLITE_TRY(codec::CheckOffsets(applied));
  auto transaction = Transaction::Begin(connection_, Transaction::Mode::kWrite);
  if (!transaction.ok()) return transaction.error();
  connection_.ClearLastError();
  Status status = ApplyEventsIn(events, applied);
  if (status.ok()) status = transaction->Commit();
  // A statement that broke a constraint: UNIQUE (packet_id, seq), a second user on a paid
  // share; a CHECK, a packet paying out more than it holds; STRICT, a balance past 2^63. The
  // event, not the ledger.
  if (!status.ok() && status.error().code == ErrorCode::kInternal &&
      (connection_.last_error_code() & 0xff) == SQLITE_CONSTRAINT) {
    return domain::Refused(status.error().message);
  }
  return status;
}

Status SqliteLedger::SetAside(const SetAsideRecord& record,
                              const domain::PartitionOffsets& applied) {
  REDPACKET_SQLITE_TRY(codec::CheckOffsets(applied));
  auto transaction = Transaction::Begin(connection_, Transaction::Mode::kWrite);
  if (!transaction.ok()) return transaction.error();
  // A repeat (the message handled again after a crash before the bus's commit) keeps the first.
  REDPACKET_SQLITE_TRY(
      connection_
          .Prepare("INSERT INTO dead_letters (stream, partition_id, offset_value, event_id, "
                   "payload, reason, at_ms) VALUES (?, ?, ?, nullif(?, ''), ?, ?, ?) "
                   "ON CONFLICT DO NOTHING")
          .Bind(std::string_view(applied_position_key_))
          .Bind(std::int64_t{record.partition})
          .Bind(static_cast<std::int64_t>(record.offset))
          .Bind(std::string_view(record.event_id))
          .Bind(std::string_view(record.payload))
          .Bind(std::string_view(record.reason))
          .Bind(domain::ToUnixMillis(record.at))
          .Run());
  REDPACKET_SQLITE_TRY(RecordOffsets(applied));
  return transaction->Commit();
}

Result<domain::PartitionOffsets> SqliteLedger::AppliedOffsets() {
  auto transaction = Transaction::Begin(connection_, Transaction::Mode::kRead);
  if (!transaction.ok()) return transaction.error();
  auto offsets = ReadAppliedOffsets();
  if (!offsets.ok()) return offsets.error();
  REDPACKET_SQLITE_TRY(transaction->Commit());
  return offsets;
}

Status SqliteLedger::ApplyEventsIn(std::span<const LedgerEvent> events,
                                   const domain::PartitionOffsets& applied) {
  // What the batch changes per packet, written with one UPDATE per packet at the end rather
  // than one per event: a hot packet takes most of a batch's grabs.
  codec::PacketDeltas deltas;
  for (const LedgerEvent& event : events) {
    Status status = ApplyEvent(event, deltas);
    if (status.ok()) continue;
    if (status.error().code == ErrorCode::kRefused) return status;  // names its event
    return MakeError(status.error().code,
                     fmt::format("event {}: {}", event.EventId(), status.error().message));
  }
  for (const auto& [packet_id, delta] : deltas.by_packet()) {
    REDPACKET_SQLITE_TRY(
        connection_
            .Prepare("UPDATE packets SET grabbed_count = grabbed_count + ?2, "
                     "grabbed_cents = grabbed_cents + ?3, "
                     "refund_cents = coalesce(?4, refund_cents), "
                     "status = CASE WHEN ?4 IS NOT NULL THEN 'refunded' "
                     "WHEN status IN ('open', 'expired') AND grabbed_count + ?2 = count "
                     "THEN 'exhausted' ELSE status END "
                     "WHERE packet_id = ?1")
            .Bind(packet_id)
            .Bind(delta.grabs)
            .Bind(delta.grabbed_cents)
            .Bind(delta.refund_cents)
            .Run());
  }
  return RecordOffsets(applied);
}

Status SqliteLedger::ApplyEvent(const LedgerEvent& event, codec::PacketDeltas& deltas) {
  auto shape = FindShape(event.packet_id);
  if (!shape.ok()) return shape.error();
  REDPACKET_SQLITE_TRY(domain::CheckEvent(event, *shape));
  // A repeat is a conflict on the event's unique key, skipped: only a conflict on
  // (packet_id, user_id) for a grab, on packet_id for a refund. A conflict on (packet_id, seq)
  // -- two users paid the same share -- fails the statement and the batch.
  Status inserted =
      event.type == LedgerEvent::Type::kGrab
          ? connection_
                .Prepare(
                    "INSERT INTO grabs (packet_id, user_id, amount_cents, seq, grabbed_at_ms) "
                    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (packet_id, user_id) DO NOTHING")
                .Bind(event.packet_id)
                .Bind(event.user_id)
                .Bind(event.amount_cents)
                .Bind(event.seq)
                .Bind(event.at_millis)
                .Run()
          : connection_
                .Prepare(
                    "INSERT INTO refunds (packet_id, user_id, amount_cents, at_ms) "
                    "VALUES (?, ?, ?, ?) ON CONFLICT (packet_id) DO NOTHING")
                .Bind(event.packet_id)
                .Bind(event.user_id)
                .Bind(event.amount_cents)
                .Bind(event.at_millis)
                .Run();
  if (!inserted.ok()) return inserted;
  if (connection_.changes() == 0) return {};  // applied before: credit nothing
  REDPACKET_SQLITE_TRY(Credit(event.user_id, event.amount_cents));
  deltas.Add(event);
  return {};
}

Result<const domain::PacketShape*> SqliteLedger::FindShape(PacketId packet_id) {
  if (const domain::PacketShape* cached = shapes_.Find(packet_id)) return cached;
  Query query = connection_.Prepare(std::string(codec::kSelectShapes) + "= ?");
  auto row = query.Bind(packet_id).Step();
  if (!row.ok()) return row.error();
  if (!*row) return static_cast<const domain::PacketShape*>(nullptr);
  auto shape = codec::ShapeFromRow(query);
  if (!shape.ok()) return shape.error();
  return &shapes_.Insert(packet_id, std::move(*shape));
}

std::string SqliteLedger::OffsetKey(std::int32_t partition) const {
  // Partition 0 (the journal) keeps the key it had before partitions existed.
  return partition == 0 ? applied_position_key_
                        : fmt::format("{}#{}", applied_position_key_, partition);
}

Status SqliteLedger::RecordOffsets(const domain::PartitionOffsets& applied) {
  for (const auto& [partition, offset] : applied) {
    REDPACKET_SQLITE_TRY(
        connection_
            .Prepare("INSERT INTO meta (key, value) VALUES (?, ?) "
                     "ON CONFLICT (key) DO UPDATE SET value = max(value, excluded.value)")
            .Bind(std::string_view(OffsetKey(partition)))
            .Bind(static_cast<std::int64_t>(offset))
            .Run());
  }
  return {};
}

Result<domain::PartitionOffsets> SqliteLedger::ReadAppliedOffsets() {
  Query query = connection_.Prepare(
      "SELECT key, value FROM meta WHERE key = ?1 OR substr(key, 1, length(?1) + 1) = ?1 || '#'");
  query.Bind(std::string_view(applied_position_key_));
  domain::PartitionOffsets offsets;
  while (true) {
    auto row = query.Step();
    if (!row.ok()) return row.error();
    if (!*row) return offsets;
    const std::string key = query.Text(0);
    std::int32_t partition = 0;
    if (key.size() > applied_position_key_.size()) {
      const std::string_view suffix =
          std::string_view(key).substr(applied_position_key_.size() + 1);
      const auto [end, error] =
          std::from_chars(suffix.data(), suffix.data() + suffix.size(), partition);
      if (error != std::errc() || end != suffix.data() + suffix.size()) {
        return codec::Corrupt(fmt::format("meta key '{}'", key));
      }
    }
    offsets[partition] = static_cast<std::uint64_t>(query.Int(1));
  }
}

}  // namespace redpacket::ledger::sqlite
