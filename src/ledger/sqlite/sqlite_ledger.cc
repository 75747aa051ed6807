// The embedded ledger on SQLite: one connection, cached prepared statements, one transaction per
// call. Exactly-once application of events rests on the UNIQUE keys of grabs and refunds.
#include "ledger/sqlite/sqlite_ledger.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <bit>
#include <charconv>
#include <cstring>
#include <limits>
#include <string>
#include <unordered_map>
#include <utility>

#include "ledger/codec/ledger_codec.h"
#include "ledger/codec/ledger_rows.h"
#include "ledger/sqlite/schema.h"
#include "ledger/sqlite/sqlite_connection.h"

namespace redpacket::ledger {
namespace {

using codec::CheckShares;
using codec::DecodeShares;
using codec::EncodeShares;
using codec::ParseCursor;
using domain::Error;
using domain::ErrorCode;
using domain::LedgerEvent;
using domain::MakeError;
using domain::PacketStatus;
using sqlite::Connection;
using sqlite::Query;
using sqlite::Transaction;

constexpr std::string_view kDepositKind = "deposit";
constexpr std::string_view kCreatePacketKind = "create_packet";
constexpr std::string_view kAppliedPositionKey = "applied_position";
// Bound on the shares kept by the packet cache of ApplyEvents (8 bytes each: 32 MB).
constexpr std::size_t kMaxCachedShares = std::size_t{4} << 20;

// "Should never happen": the stored data contradicts an invariant.
Error Corrupt(std::string message) { return MakeError(ErrorCode::kInternal, std::move(message)); }
// An event the ledger's rules refuse on its own (ApplyEvents): the worker sets it aside.
Error Refused(std::string message) { return MakeError(ErrorCode::kRefused, std::move(message)); }

// ---- SQL ----

constexpr char kSelectBalance[] = "SELECT balance_cents FROM accounts WHERE user_id = ?";
constexpr char kSelectMeta[] = "SELECT value FROM meta WHERE key = ?";
constexpr char kUpsertMeta[] =
    "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = ?2";
// meta keys besides the applied positions (schema.cc, migration 3).
constexpr std::string_view kNextUserIdKey = "next_user_id";
constexpr std::string_view kDepositsKey = "deposits_cents";
constexpr char kCredit[] =
    "INSERT INTO accounts (user_id, name, balance_cents) VALUES (?1, '', ?2) "
    "ON CONFLICT (user_id) DO UPDATE SET balance_cents = balance_cents + excluded.balance_cents";
constexpr char kDebit[] =
    "UPDATE accounts SET balance_cents = balance_cents - ?2 WHERE user_id = ?1";
constexpr char kSelectIdempotent[] =
    "SELECT result, fingerprint FROM idempotency WHERE user_id = ? AND request_id = ? AND kind = ?";
constexpr char kInsertIdempotent[] =
    "INSERT INTO idempotency (user_id, request_id, kind, result, fingerprint) "
    "VALUES (?, ?, ?, ?, ?)";

// Column order shared by every query that builds a PacketRecord (see ReadPacketRow).
#define REDPACKET_SELECT_PACKETS                                                                \
  "SELECT p.packet_id, p.sender_id, p.kind, p.greeting, p.total_cents, p.count, "               \
  "p.expires_in_s, p.receiver_id, p.created_at_ms, p.expires_at_ms, p.status, p.refund_cents, " \
  "s.shares FROM packets AS p JOIN packet_shares AS s ON s.packet_id = p.packet_id "
constexpr char kSelectPacket[] = REDPACKET_SELECT_PACKETS "WHERE p.packet_id = ?";
constexpr char kSelectUnfinishedPackets[] =
    REDPACKET_SELECT_PACKETS "WHERE p.status IN ('open', 'expired') ORDER BY p.packet_id";
#undef REDPACKET_SELECT_PACKETS

// Column order shared by every query that builds a Grab (see ReadGrabRow); packet_id first.
constexpr char kSelectGrabsOfPacket[] =
    "SELECT packet_id, user_id, amount_cents, seq, grabbed_at_ms FROM grabs WHERE packet_id = ? "
    "ORDER BY seq";
constexpr char kSelectGrabsOfUnfinishedPackets[] =
    "SELECT g.packet_id, g.user_id, g.amount_cents, g.seq, g.grabbed_at_ms FROM grabs AS g "
    "JOIN packets AS p ON p.packet_id = g.packet_id WHERE p.status IN ('open', 'expired') "
    "ORDER BY g.packet_id, g.seq";
constexpr char kSelectAllGrabs[] =
    "SELECT packet_id, user_id, amount_cents, seq, grabbed_at_ms FROM grabs "
    "ORDER BY packet_id, seq";

// The user's accounts' expected balance from the flows of money, next to the stored balance.
constexpr char kSelectAccountMismatches[] = R"sql(
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

Result<std::int64_t> ParseInt(std::string_view text) {
  std::int64_t value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size()) {
    return MakeError(ErrorCode::kBadRequest, fmt::format("not an integer: '{}'", text));
  }
  return value;
}

// Reads a row of REDPACKET_SELECT_PACKETS; grabs are attached separately.
Result<PacketRecord> ReadPacketRow(const Query& row) { return codec::PacketFromRow(row); }

domain::Grab ReadGrabRow(const Query& row) { return codec::GrabFromRow(row); }

// Appends each grab row (ordered by packet_id, seq) to its packet in `packets` (ordered by
// packet_id): one query for the grabs of all packets instead of one per packet.
template <class PacketWithGrabs>
Status AttachGrabs(Query& grabs, std::vector<PacketWithGrabs>& packets) {
  std::size_t index = 0;
  while (true) {
    auto row = grabs.Step();
    if (!row.ok()) return row.error();
    if (!*row) return {};
    const PacketId packet_id = grabs.Int(0);
    while (index < packets.size() && packets[index].packet_id < packet_id) ++index;
    if (index == packets.size() || packets[index].packet_id != packet_id) {
      return Corrupt(fmt::format("a grab of packet {} that was not read", packet_id));
    }
    packets[index].grabs.push_back(ReadGrabRow(grabs));
  }
}

// Runs `query` (one integer column, at most one row): the value, or `absent` when no row.
Result<std::int64_t> SelectInt(Query& query, std::int64_t absent) {
  auto row = query.Step();
  if (!row.ok()) return row.error();
  return *row ? query.Int(0) : absent;
}
Result<std::int64_t> SelectInt(Query&& query, std::int64_t absent) {
  return SelectInt(query, absent);
}

class SqliteLedger final : public Ledger {
 public:
  SqliteLedger(const std::filesystem::path& file, bool read_only, std::string_view journal_name)
      : connection_(file, read_only),
        applied_position_key_(journal_name.empty()
                                  ? std::string(kAppliedPositionKey)
                                  : fmt::format("{}:{}", kAppliedPositionKey, journal_name)) {}

  void set_background_writer(bool background) { connection_.set_background_writer(background); }

  Status Migrate() override { return sqlite::MigrateSchema(connection_); }

  Result<UserRecord> CreateUser(std::string_view name) override {
    return InOwnTransaction([&] { return CreateUserIn(name); });
  }

  Result<Cents> Deposit(UserId user_id, Cents amount_cents, std::string_view request_id) override {
    return InOwnTransaction([&] { return DepositIn(user_id, amount_cents, request_id); });
  }

  Result<PacketRecord> CreatePacket(const domain::PacketSpec& spec,
                                    const std::vector<Cents>& shares, TimePoint created_at,
                                    TimePoint expires_at, std::string_view request_id) override {
    return InOwnTransaction(
        [&] { return CreatePacketIn(spec, shares, created_at, expires_at, request_id); });
  }

  std::vector<WriteResult> WriteBatch(std::span<const Write> writes) override {
    auto transaction = Transaction::Begin(connection_, Transaction::Mode::kWrite);
    if (!transaction.ok()) return FailAll(writes, transaction.error());
    std::vector<WriteResult> results;
    results.reserve(writes.size());
    // Each write inside its own savepoint: one that fails (402, 409, a bad request) is rolled
    // back alone, and the next one starts from exactly what the earlier ones left.
    for (const Write& write : writes) {
      if (Status begun = connection_.Prepare("SAVEPOINT write").Run(); !begun.ok()) {
        return FailAll(writes, begun.error());
      }
      WriteResult result = RunWrite(write);
      const bool ok = std::visit([](const auto& answer) { return answer.ok(); }, result);
      Status closed = ok ? Status() : connection_.Prepare("ROLLBACK TO write").Run();
      if (closed.ok()) closed = connection_.Prepare("RELEASE write").Run();
      // SQLite may have rolled the whole transaction back by itself (I/O error, full disk): the
      // savepoint is gone and so is every earlier write of the batch.
      if (!closed.ok()) return FailAll(writes, closed.error());
      results.push_back(std::move(result));
    }
    // One commit (one fsync) for the whole batch. If it fails, no write is durable: none may
    // be answered as if it were.
    if (Status committed = transaction->Commit(); !committed.ok()) {
      return FailAll(writes, committed.error());
    }
    return results;
  }

  Result<BalanceSnapshot> BalanceWithOffsets(UserId user_id) override {
    auto transaction = Transaction::Begin(connection_, Transaction::Mode::kRead);
    if (!transaction.ok()) return transaction.error();
    auto balance = SelectInt(connection_.Prepare(kSelectBalance).Bind(user_id), 0);
    if (!balance.ok()) return balance.error();
    auto offsets = ReadAppliedOffsets();
    if (!offsets.ok()) return offsets.error();
    REDPACKET_SQLITE_TRY(transaction->Commit());
    return BalanceSnapshot{*balance, std::move(*offsets)};
  }

 private:
  // Runs `write` inside the caller's transaction.
  WriteResult RunWrite(const Write& write) {
    if (const auto* user = std::get_if<CreateUserWrite>(&write)) {
      return WriteResult(std::in_place_index<0>, CreateUserIn(user->name));
    }
    if (const auto* deposit = std::get_if<DepositWrite>(&write)) {
      return WriteResult(std::in_place_index<1>,
                         DepositIn(deposit->user_id, deposit->amount_cents, deposit->request_id));
    }
    if (std::holds_alternative<CompleteLoadWrite>(write)) {
      return WriteResult(std::in_place_index<3>, true);  // no load intents here (ledger.h)
    }
    const auto& packet = std::get<CreatePacketWrite>(write);
    return WriteResult(std::in_place_index<2>,
                       CreatePacketIn(packet.spec, packet.shares, packet.created_at,
                                      packet.expires_at, packet.request_id));
  }

  // The answer `error` of the kind `write` expects.
  static WriteResult Failed(const Write& write, const Error& error) {
    switch (write.index()) {
      case 0:
        return WriteResult(std::in_place_index<0>, error);
      case 1:
        return WriteResult(std::in_place_index<1>, error);
      case 3:
        return WriteResult(std::in_place_index<3>, error);
      default:
        return WriteResult(std::in_place_index<2>, error);
    }
  }

  static std::vector<WriteResult> FailAll(std::span<const Write> writes, const Error& error) {
    std::vector<WriteResult> results;
    results.reserve(writes.size());
    for (const Write& write : writes) results.push_back(Failed(write, error));
    return results;
  }

  // One write transaction around `body`: committed when it succeeds, rolled back otherwise.
  template <class Body>
  auto InOwnTransaction(Body body) -> decltype(body()) {
    auto transaction = Transaction::Begin(connection_, Transaction::Mode::kWrite);
    if (!transaction.ok()) return transaction.error();
    auto result = body();
    if (!result.ok()) return result;
    REDPACKET_SQLITE_TRY(transaction->Commit());
    return result;
  }

  // Why a counter of its own rather than max(user_id) + 1: accounts are also made with explicit
  // ids (a deposit, a grab's credit), and one of those at 2^53 - 1 would leave no id after it.
  Result<UserRecord> CreateUserIn(std::string_view name) {
    auto next = SelectInt(connection_.Prepare(kSelectMeta).Bind(kNextUserIdKey), 1);
    if (!next.ok()) return next.error();
    // The counter itself when it is free, else the first id after a run of held ones.
    auto free_id = SelectInt(connection_.Prepare(
                                 "SELECT CASE WHEN NOT EXISTS (SELECT 1 FROM accounts WHERE "
                                 "user_id = ?1) THEN ?1 ELSE (SELECT a.user_id + 1 FROM accounts "
                                 "AS a WHERE a.user_id >= ?1 AND NOT EXISTS (SELECT 1 FROM "
                                 "accounts AS b WHERE b.user_id = a.user_id + 1) ORDER BY "
                                 "a.user_id LIMIT 1) END")
                                 .Bind(*next),
                             0);
    if (!free_id.ok()) return free_id.error();
    if (*free_id < 1 || *free_id > domain::kMaxUserId) {
      return MakeError(ErrorCode::kInternal, "no user id left below 2^53");
    }
    UserRecord user{.user_id = *free_id, .name = std::string(name), .balance_cents = 0};
    REDPACKET_SQLITE_TRY(
        connection_.Prepare("INSERT INTO accounts (user_id, name, balance_cents) VALUES (?, ?, 0)")
            .Bind(user.user_id)
            .Bind(name)
            .Run());
    REDPACKET_SQLITE_TRY(SetMeta(kNextUserIdKey, user.user_id + 1));
    return user;
  }

  Result<Cents> DepositIn(UserId user_id, Cents amount_cents, std::string_view request_id) {
    if (user_id < 1 || user_id > domain::kMaxUserId) {
      return MakeError(ErrorCode::kBadRequest, "user_id out of range");
    }
    if (amount_cents < 1) return MakeError(ErrorCode::kBadRequest, "amount_cents must be positive");
    if (!request_id.empty()) {
      auto first = FindIdempotent(user_id, request_id, kDepositKind,
                                  codec::DepositFingerprint(amount_cents));
      if (!first.ok()) return first.error();
      if (*first) return **first;  // a repeat: the first answer, nothing credited
    }
    // All the money there is, bounded: no balance, and so no later credit, can pass it.
    auto deposited = SelectInt(connection_.Prepare(kSelectMeta).Bind(kDepositsKey), 0);
    if (!deposited.ok()) return deposited.error();
    REDPACKET_SQLITE_TRY(codec::CheckDepositWithinTotal(*deposited, amount_cents));
    auto balance = SelectInt(connection_.Prepare(kSelectBalance).Bind(user_id), 0);
    if (!balance.ok()) return balance.error();
    const Cents new_balance = *balance + amount_cents;
    REDPACKET_SQLITE_TRY(Credit(user_id, amount_cents));
    REDPACKET_SQLITE_TRY(SetMeta(kDepositsKey, *deposited + amount_cents));
    REDPACKET_SQLITE_TRY(connection_
                             .Prepare("INSERT INTO deposits (user_id, amount_cents, request_id, "
                                      "created_at_ms) VALUES (?, ?, nullif(?, ''), ?)")
                             .Bind(user_id)
                             .Bind(amount_cents)
                             .Bind(request_id)
                             .Bind(domain::ToUnixMillis(domain::Clock::now()))
                             .Run());
    if (!request_id.empty()) {
      REDPACKET_SQLITE_TRY(RecordIdempotent(user_id, request_id, kDepositKind, new_balance,
                                            codec::DepositFingerprint(amount_cents)));
    }
    return new_balance;
  }

  Result<PacketRecord> CreatePacketIn(const domain::PacketSpec& spec,
                                      const std::vector<Cents>& shares, TimePoint created_at,
                                      TimePoint expires_at, std::string_view request_id) {
    REDPACKET_SQLITE_TRY(codec::CheckShares(spec, shares));
    if (!request_id.empty()) {
      auto first = FindIdempotent(spec.sender_id, request_id, kCreatePacketKind,
                                  codec::PacketFingerprint(spec));
      if (!first.ok()) return first.error();
      if (*first) {  // a repeat: the first packet, nothing debited
        auto packet = ReadPacket(**first);
        if (!packet.ok()) return packet.error();
        if (!*packet) return Corrupt(fmt::format("idempotent packet {} is missing", **first));
        (*packet)->repeated = true;
        return std::move(**packet);
      }
    }
    // An account that does not exist has balance 0. Checked inside the write transaction, so
    // no concurrent debit can slip between the check and the debit.
    auto balance = SelectInt(connection_.Prepare(kSelectBalance).Bind(spec.sender_id), 0);
    if (!balance.ok()) return balance.error();
    if (*balance < spec.total_cents) {
      return MakeError(
          ErrorCode::kInsufficientFunds,
          fmt::format("balance is {} cents, the packet needs {}", *balance, spec.total_cents));
    }
    REDPACKET_SQLITE_TRY(
        connection_.Prepare(kDebit).Bind(spec.sender_id).Bind(spec.total_cents).Run());
    auto last =
        SelectInt(connection_.Prepare("SELECT coalesce(max(packet_id), 0) FROM packets"), 0);
    if (!last.ok()) return last.error();

    PacketRecord packet{.packet_id = *last + 1,
                        .spec = spec,
                        .created_at = created_at,
                        .expires_at = expires_at,
                        .status = PacketStatus::kOpen,
                        .shares = shares,
                        .grabs = {},
                        .refund_cents = std::nullopt};
    const std::vector<std::byte> blob = EncodeShares(shares);
    REDPACKET_SQLITE_TRY(
        connection_
            .Prepare("INSERT INTO packets (packet_id, sender_id, kind, greeting, total_cents, "
                     "count, expires_in_s, receiver_id, created_at_ms, expires_at_ms, status) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'open')")
            .Bind(packet.packet_id)
            .Bind(spec.sender_id)
            .Bind(std::string_view(domain::ToString(spec.kind)))
            .Bind(std::string_view(spec.greeting))
            .Bind(spec.total_cents)
            .Bind(spec.count)
            .Bind(spec.expires_in_s)
            .Bind(spec.receiver_id)
            .Bind(domain::ToUnixMillis(created_at))
            .Bind(domain::ToUnixMillis(expires_at))
            .Run());
    REDPACKET_SQLITE_TRY(
        connection_.Prepare("INSERT INTO packet_shares (packet_id, shares) VALUES (?, ?)")
            .Bind(packet.packet_id)
            .BindBlob(blob)
            .Run());
    if (!request_id.empty()) {
      REDPACKET_SQLITE_TRY(RecordIdempotent(spec.sender_id, request_id, kCreatePacketKind,
                                            packet.packet_id, codec::PacketFingerprint(spec)));
    }
    return packet;
  }

 public:
  Status ApplyEvents(std::span<const LedgerEvent> events,
                     const domain::PartitionOffsets& applied) override {
    REDPACKET_SQLITE_TRY(CheckOffsets(applied));
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
      return Refused(status.error().message);
    }
    return status;
  }

  Status SetAside(const SetAsideRecord& record, const domain::PartitionOffsets& applied) override {
    REDPACKET_SQLITE_TRY(CheckOffsets(applied));
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

 private:
  static Status CheckOffsets(const domain::PartitionOffsets& applied) {
    for (const auto& [partition, offset] : applied) {
      if (partition < 0 ||
          offset > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
        return MakeError(ErrorCode::kInternal, "partition or offset out of range");
      }
    }
    return {};
  }

  // Each partition's offset, never moved back; the caller holds the write transaction.
  Status RecordOffsets(const domain::PartitionOffsets& applied) {
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

  Status SetMeta(std::string_view key, std::int64_t value) {
    return connection_.Prepare(kUpsertMeta).Bind(key).Bind(value).Run();
  }

  // The body of ApplyEvents; the caller holds the write transaction.
  Status ApplyEventsIn(std::span<const LedgerEvent> events,
                       const domain::PartitionOffsets& applied) {
    // What the batch changes per packet, written with one UPDATE per packet at the end rather
    // than one per event: a hot packet takes most of a batch's grabs.
    std::unordered_map<PacketId, PacketDelta> deltas;
    for (const LedgerEvent& event : events) {
      Status status = event.type == LedgerEvent::Type::kGrab     ? ApplyGrab(event, deltas)
                      : event.type == LedgerEvent::Type::kRefund ? ApplyRefund(event, deltas)
                                                                 : Status(Refused("unknown type"));
      if (!status.ok()) {
        return MakeError(status.error().code,
                         fmt::format("event {}: {}", event.EventId(), status.error().message));
      }
    }
    for (const auto& [packet_id, delta] : deltas) {
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

 public:

  Result<domain::PartitionOffsets> AppliedOffsets() override {
    auto transaction = Transaction::Begin(connection_, Transaction::Mode::kRead);
    if (!transaction.ok()) return transaction.error();
    auto offsets = ReadAppliedOffsets();
    if (!offsets.ok()) return offsets.error();
    REDPACKET_SQLITE_TRY(transaction->Commit());
    return offsets;
  }

  Result<Cents> Balance(UserId user_id) override {
    return SelectInt(connection_.Prepare(kSelectBalance).Bind(user_id), 0);
  }

  Result<HistoryPage> History(UserId user_id, HistoryKind kind, int limit,
                              std::string_view cursor) override {
    auto before = ParseCursor(cursor);
    if (!before.ok()) return before.error();
    limit = std::clamp(limit, 1, 100);
    // One row more than the page: tells whether there is a next page without a cursor that
    // leads to an empty one.
    Query query =
        kind == HistoryKind::kSent
            ? connection_.Prepare(
                  "SELECT packet_id, sender_id, kind, status, greeting, total_cents, count, "
                  "created_at_ms, expires_at_ms, 0, 0, packet_id FROM packets "
                  "WHERE sender_id = ? AND packet_id < ? ORDER BY packet_id DESC LIMIT ?")
            : connection_.Prepare(
                  "SELECT p.packet_id, p.sender_id, p.kind, p.status, p.greeting, p.total_cents, "
                  "p.count, g.grabbed_at_ms, p.expires_at_ms, g.amount_cents, g.seq, g.id "
                  "FROM grabs AS g JOIN packets AS p ON p.packet_id = g.packet_id "
                  "WHERE g.user_id = ? AND g.id < ? ORDER BY g.id DESC LIMIT ?");
    query.Bind(user_id).Bind(*before).Bind(std::int64_t{limit} + 1);
    HistoryPage page;
    std::int64_t last_id = 0;
    while (true) {
      auto row = query.Step();
      if (!row.ok()) return row.error();
      if (!*row) break;
      if (page.items.size() == static_cast<std::size_t>(limit)) {
        page.next_cursor = std::to_string(last_id);
        break;
      }
      HistoryItem item;
      item.packet_id = query.Int(0);
      item.sender_id = query.Int(1);
      if (!domain::ParsePacketKind(query.Text(2), &item.kind) ||
          !domain::ParsePacketStatus(query.Text(3), &item.status)) {
        return Corrupt(fmt::format("packet {}: bad kind or status", item.packet_id));
      }
      item.greeting = query.Text(4);
      item.total_cents = query.Int(5);
      item.count = query.Int(6);
      item.at = domain::FromUnixMillis(query.Int(7));
      item.expires_at = domain::FromUnixMillis(query.Int(8));
      item.amount_cents = query.Int(9);
      item.seq = query.Int(10);
      last_id = query.Int(11);
      page.items.push_back(std::move(item));
    }
    return page;
  }

  Result<std::optional<PacketRecord>> GetPacket(PacketId packet_id) override {
    auto transaction = Transaction::Begin(connection_, Transaction::Mode::kRead);
    if (!transaction.ok()) return transaction.error();
    auto packet = ReadPacket(packet_id);
    if (!packet.ok()) return packet.error();
    REDPACKET_SQLITE_TRY(transaction->Commit());
    return packet;
  }

  Result<std::vector<PacketRecord>> LoadUnfinishedPackets() override {
    auto transaction = Transaction::Begin(connection_, Transaction::Mode::kRead);
    if (!transaction.ok()) return transaction.error();
    std::vector<PacketRecord> packets;
    Query query = connection_.Prepare(kSelectUnfinishedPackets);
    while (true) {
      auto row = query.Step();
      if (!row.ok()) return row.error();
      if (!*row) break;
      auto packet = ReadPacketRow(query);
      if (!packet.ok()) return packet.error();
      packets.push_back(std::move(*packet));
    }
    Query grabs = connection_.Prepare(kSelectGrabsOfUnfinishedPackets);
    REDPACKET_SQLITE_TRY(AttachGrabs(grabs, packets));
    REDPACKET_SQLITE_TRY(transaction->Commit());
    return packets;
  }

  Result<std::vector<PacketProgress>> ListUnfinishedPackets() override {
    Query query = connection_.Prepare(
        "SELECT packet_id, status, grabbed_count FROM packets WHERE status IN ('open', 'expired') "
        "ORDER BY packet_id");
    std::vector<PacketProgress> packets;
    while (true) {
      auto row = query.Step();
      if (!row.ok()) return row.error();
      if (!*row) return packets;
      PacketProgress packet{query.Int(0), PacketStatus::kOpen, query.Int(2)};
      if (!domain::ParsePacketStatus(query.Text(1), &packet.status)) {
        return Corrupt(fmt::format("packet {}: bad status", packet.packet_id));
      }
      packets.push_back(packet);
    }
  }

  Result<AuditFacts> ReadAuditFacts() override {
    // One read transaction: every fact below comes from the same snapshot, so a concurrent
    // ApplyEvents cannot make the sums disagree.
    auto transaction = Transaction::Begin(connection_, Transaction::Mode::kRead);
    if (!transaction.ok()) return transaction.error();
    AuditFacts facts;
    auto deposits =
        SelectInt(connection_.Prepare("SELECT coalesce(sum(amount_cents), 0) FROM deposits"), 0);
    if (!deposits.ok()) return deposits.error();
    facts.deposits_cents = *deposits;
    auto balances =
        SelectInt(connection_.Prepare("SELECT coalesce(sum(balance_cents), 0) FROM accounts"), 0);
    if (!balances.ok()) return balances.error();
    facts.balances_cents = *balances;

    Query packets = connection_.Prepare(
        "SELECT p.packet_id, p.sender_id, p.total_cents, p.count, p.status, p.refund_cents, "
        "s.shares FROM packets AS p JOIN packet_shares AS s ON s.packet_id = p.packet_id "
        "ORDER BY p.packet_id");
    while (true) {
      auto row = packets.Step();
      if (!row.ok()) return row.error();
      if (!*row) break;
      AuditFacts::Packet packet{.packet_id = packets.Int(0),
                                .sender_id = packets.Int(1),
                                .total_cents = packets.Int(2),
                                .count = packets.Int(3),
                                .status = PacketStatus::kOpen,
                                .shares = {},
                                .grabs = {},
                                .refund_cents = packets.OptionalInt(5)};
      if (!domain::ParsePacketStatus(packets.Text(4), &packet.status)) {
        return Corrupt(fmt::format("packet {}: bad status", packet.packet_id));
      }
      auto shares = DecodeShares(packets.Blob(6), packet.packet_id, packet.count);
      if (!shares.ok()) return shares.error();
      packet.shares = std::move(*shares);
      facts.packets.push_back(std::move(packet));
    }
    Query grabs = connection_.Prepare(kSelectAllGrabs);
    REDPACKET_SQLITE_TRY(AttachGrabs(grabs, facts.packets));

    Query mismatches = connection_.Prepare(kSelectAccountMismatches);
    while (true) {
      auto row = mismatches.Step();
      if (!row.ok()) return row.error();
      if (!*row) break;
      facts.account_mismatches.push_back(AuditFacts::Mismatch{.user_id = mismatches.Int(0),
                                                              .balance_cents = mismatches.Int(1),
                                                              .expected_cents = mismatches.Int(2)});
    }
    auto offsets = ReadAppliedOffsets();
    if (!offsets.ok()) return offsets.error();
    facts.applied_offsets = std::move(*offsets);
    Query dead_letters = connection_.Prepare(
        "SELECT partition_id, offset_value, coalesce(event_id, ''), payload, reason, at_ms "
        "FROM dead_letters ORDER BY stream, partition_id, offset_value");
    while (true) {
      auto row = dead_letters.Step();
      if (!row.ok()) return row.error();
      if (!*row) break;
      facts.set_aside.push_back(
          SetAsideRecord{.partition = static_cast<std::int32_t>(dead_letters.Int(0)),
                         .offset = static_cast<std::uint64_t>(dead_letters.Int(1)),
                         .event_id = dead_letters.Text(2),
                         .payload = dead_letters.Text(3),
                         .reason = dead_letters.Text(4),
                         .at = domain::FromUnixMillis(dead_letters.Int(5))});
    }
    REDPACKET_SQLITE_TRY(transaction->Commit());
    return facts;
  }

 private:
  // The immutable part of a packet that validating an event needs.
  struct PacketShape {
    UserId sender_id = 0;
    Cents total_cents = 0;
    std::vector<Cents> shares;
  };
  struct PacketDelta {
    std::int64_t grabs = 0;
    Cents grabbed_cents = 0;
    std::optional<Cents> refund_cents;
  };

  // A packet's shape, read once and cached: shares, sender and total never change after
  // creation and packet ids are never reused, so the cache cannot go stale. nullptr: unknown id.
  Result<const PacketShape*> FindShape(PacketId packet_id) {
    if (auto found = shapes_.find(packet_id); found != shapes_.end()) return &found->second;
    Query query = connection_.Prepare(
        "SELECT p.sender_id, p.total_cents, p.count, s.shares FROM packets AS p "
        "JOIN packet_shares AS s ON s.packet_id = p.packet_id WHERE p.packet_id = ?");
    auto row = query.Bind(packet_id).Step();
    if (!row.ok()) return row.error();
    if (!*row) return static_cast<const PacketShape*>(nullptr);
    auto shares = DecodeShares(query.Blob(3), packet_id, query.Int(2));
    if (!shares.ok()) return shares.error();
    if (cached_shares_ + shares->size() > kMaxCachedShares) {
      shapes_.clear();
      cached_shares_ = 0;
    }
    cached_shares_ += shares->size();
    auto [it, inserted] =
        shapes_.emplace(packet_id, PacketShape{query.Int(0), query.Int(1), std::move(*shares)});
    return &it->second;
  }

  Status ApplyGrab(const LedgerEvent& grab, std::unordered_map<PacketId, PacketDelta>& deltas) {
    auto shape = FindShape(grab.packet_id);
    if (!shape.ok()) return shape.error();
    // The hot path hands out shares[seq - 1] to the seq-th grabber; any other amount means the
    // journal or the engine is corrupt, and crediting it would break conservation of money.
    if (*shape == nullptr) return Refused("grab of an unknown packet");
    const std::vector<Cents>& shares = (*shape)->shares;
    if (grab.seq < 1 || static_cast<std::uint64_t>(grab.seq) > shares.size()) {
      return Refused(fmt::format("seq {} outside 1..{}", grab.seq, shares.size()));
    }
    if (grab.amount_cents != shares[static_cast<std::size_t>(grab.seq - 1)]) {
      return Refused(fmt::format("amount {} but share {} is {}", grab.amount_cents, grab.seq,
                                 shares[static_cast<std::size_t>(grab.seq - 1)]));
    }
    // Only a conflict on (packet_id, user_id) is a repeat to skip; a conflict on
    // (packet_id, seq) -- two users paid the same share -- fails the statement and the batch.
    REDPACKET_SQLITE_TRY(
        connection_
            .Prepare("INSERT INTO grabs (packet_id, user_id, amount_cents, seq, grabbed_at_ms) "
                     "VALUES (?, ?, ?, ?, ?) ON CONFLICT (packet_id, user_id) DO NOTHING")
            .Bind(grab.packet_id)
            .Bind(grab.user_id)
            .Bind(grab.amount_cents)
            .Bind(grab.seq)
            .Bind(grab.at_millis)
            .Run());
    if (connection_.changes() == 0) return {};  // applied before: credit nothing
    REDPACKET_SQLITE_TRY(Credit(grab.user_id, grab.amount_cents));
    PacketDelta& delta = deltas[grab.packet_id];
    delta.grabs += 1;
    delta.grabbed_cents += grab.amount_cents;
    return {};
  }

  Status ApplyRefund(const LedgerEvent& refund, std::unordered_map<PacketId, PacketDelta>& deltas) {
    auto shape = FindShape(refund.packet_id);
    if (!shape.ok()) return shape.error();
    if (*shape == nullptr) return Refused("refund of an unknown packet");
    if (refund.user_id != (*shape)->sender_id) {
      return Refused(fmt::format("refund to user {} but the sender is {}", refund.user_id,
                                 (*shape)->sender_id));
    }
    if (refund.amount_cents < 0 || refund.amount_cents > (*shape)->total_cents) {
      return Refused(fmt::format("refund of {} cents from a packet of {}", refund.amount_cents,
                                 (*shape)->total_cents));
    }
    REDPACKET_SQLITE_TRY(
        connection_
            .Prepare("INSERT INTO refunds (packet_id, user_id, amount_cents, at_ms) "
                     "VALUES (?, ?, ?, ?) ON CONFLICT (packet_id) DO NOTHING")
            .Bind(refund.packet_id)
            .Bind(refund.user_id)
            .Bind(refund.amount_cents)
            .Bind(refund.at_millis)
            .Run());
    if (connection_.changes() == 0) return {};  // refunded before: credit nothing
    REDPACKET_SQLITE_TRY(Credit(refund.user_id, refund.amount_cents));
    deltas[refund.packet_id].refund_cents = refund.amount_cents;
    return {};
  }

  // Partition 0 (the journal) keeps the key it had before partitions existed.
  std::string OffsetKey(std::int32_t partition) const {
    return partition == 0 ? applied_position_key_
                          : fmt::format("{}#{}", applied_position_key_, partition);
  }

  // Every partition's offset of this ledger's stream; the caller holds a transaction.
  Result<domain::PartitionOffsets> ReadAppliedOffsets() {
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
        auto parsed = ParseInt(std::string_view(key).substr(applied_position_key_.size() + 1));
        if (!parsed.ok()) return Corrupt(fmt::format("meta key '{}'", key));
        partition = static_cast<std::int32_t>(*parsed);
      }
      offsets[partition] = static_cast<std::uint64_t>(query.Int(1));
    }
  }

  // Creates the account on its first credit.
  Status Credit(UserId user_id, Cents amount_cents) {
    return connection_.Prepare(kCredit).Bind(user_id).Bind(amount_cents).Run();
  }

  // The stored result of an earlier call with this key, if any; kIdempotencyConflict when that
  // call was another request (a row written before fingerprints has '' and matches any).
  Result<std::optional<std::int64_t>> FindIdempotent(UserId user_id, std::string_view request_id,
                                                     std::string_view kind,
                                                     std::string_view fingerprint) {
    Query query = connection_.Prepare(kSelectIdempotent);
    auto row = query.Bind(user_id).Bind(request_id).Bind(kind).Step();
    if (!row.ok()) return row.error();
    if (!*row) return std::optional<std::int64_t>();
    if (!query.Text(1).empty() && query.Text(1) != fingerprint) {
      return MakeError(ErrorCode::kIdempotencyConflict,
                       fmt::format("request_id '{}' was used for a different request", request_id));
    }
    auto value = ParseInt(query.Text(0));
    if (!value.ok()) return Corrupt(fmt::format("idempotency result: {}", value.error().message));
    return std::optional<std::int64_t>(*value);
  }

  Status RecordIdempotent(UserId user_id, std::string_view request_id, std::string_view kind,
                          std::int64_t result, std::string_view fingerprint) {
    return connection_.Prepare(kInsertIdempotent)
        .Bind(user_id)
        .Bind(request_id)
        .Bind(kind)
        .Bind(std::string_view(std::to_string(result)))
        .Bind(fingerprint)
        .Run();
  }

  // The packet with its grabs; the caller holds a transaction so both reads agree.
  Result<std::optional<PacketRecord>> ReadPacket(PacketId packet_id) {
    Query query = connection_.Prepare(kSelectPacket);
    auto row = query.Bind(packet_id).Step();
    if (!row.ok()) return row.error();
    if (!*row) return std::optional<PacketRecord>();
    auto packet = ReadPacketRow(query);
    if (!packet.ok()) return packet.error();
    Query grabs = connection_.Prepare(kSelectGrabsOfPacket);
    grabs.Bind(packet_id);
    while (true) {
      auto grab = grabs.Step();
      if (!grab.ok()) return grab.error();
      if (!*grab) break;
      packet->grabs.push_back(ReadGrabRow(grabs));
    }
    return std::optional<PacketRecord>(std::move(*packet));
  }

  Connection connection_;
  // Each journal applied to this ledger records its own position: the positions of two journals
  // (two cluster-mode servers sharing the ledger) are unrelated counters.
  std::string applied_position_key_;
  std::unordered_map<PacketId, PacketShape> shapes_;
  std::size_t cached_shares_ = 0;
};

}  // namespace

std::unique_ptr<Ledger> OpenSqliteLedger(const std::filesystem::path& file, bool read_only,
                                         std::string_view journal_name, bool background_writer) {
  auto ledger = std::make_unique<SqliteLedger>(file, read_only, journal_name);
  ledger->set_background_writer(background_writer);
  return ledger;
}

}  // namespace redpacket::ledger
