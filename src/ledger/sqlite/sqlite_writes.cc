// The SQLite ledger's writes: users, deposits and packet creation, alone or grouped into one
// transaction (WriteBatch), with the rules of domain/ (deposit_rules, idempotency); the factory.
#include <fmt/format.h>

#include <string>
#include <utility>

#include "domain/deposit_rules.h"
#include "domain/idempotency.h"
#include "ledger/codec/ledger_codec.h"
#include "ledger/codec/ledger_reads.h"
#include "ledger/sqlite/schema.h"
#include "ledger/sqlite/sqlite_ledger.h"
#include "ledger/sqlite/sqlite_ledger_impl.h"

namespace redpacket::ledger {

std::unique_ptr<Ledger> OpenSqliteLedger(const std::filesystem::path& file, bool read_only,
                                         std::string_view journal_name, bool background_writer,
                                         const domain::TimeSource& clock) {
  auto ledger = std::make_unique<sqlite::SqliteLedger>(file, read_only, journal_name, clock);
  ledger->set_background_writer(background_writer);
  return ledger;
}

namespace sqlite {
namespace {

using domain::Error;
using domain::ErrorCode;
using domain::MakeError;

constexpr std::string_view kAppliedPositionKey = "applied_position";
// meta keys besides the applied positions (schema.cc, migration 3).
constexpr std::string_view kNextUserIdKey = "next_user_id";
constexpr std::string_view kDepositsKey = "deposits_cents";

std::vector<WriteResult> FailAll(std::span<const Write> writes, const Error& error) {
  std::vector<WriteResult> results;
  results.reserve(writes.size());
  for (const Write& write : writes) results.push_back(FailedWrite(write, error));
  return results;
}

// One write transaction around `body`: committed when it succeeds, rolled back otherwise.
template <class Body>
auto InOwnTransaction(Connection& connection, Body body) -> decltype(body()) {
  auto transaction = Transaction::Begin(connection, Transaction::Mode::kWrite);
  if (!transaction.ok()) return transaction.error();
  auto result = body();
  if (!result.ok()) return result;
  REDPACKET_SQLITE_TRY(transaction->Commit());
  return result;
}

}  // namespace

Result<Query> Statements::operator()(std::string_view sql,
                                     std::initializer_list<std::int64_t> arguments) const {
  Query query = connection.Prepare(sql);
  for (std::int64_t argument : arguments) query.Bind(argument);
  return Result<Query>(std::move(query));
}

SqliteLedger::SqliteLedger(const std::filesystem::path& file, bool read_only,
                           std::string_view journal_name, const domain::TimeSource& clock)
    : connection_(file, read_only),
      clock_(clock),
      applied_position_key_(journal_name.empty()
                                ? std::string(kAppliedPositionKey)
                                : fmt::format("{}:{}", kAppliedPositionKey, journal_name)) {}

Result<std::int64_t> SqliteLedger::SelectInt(std::string_view sql,
                                             std::initializer_list<std::int64_t> arguments,
                                             std::int64_t absent) {
  Statements run{connection_};
  return codec::SelectInt(run, sql, arguments, absent);
}

Status SqliteLedger::Migrate() { return MigrateSchema(connection_); }

Result<UserRecord> SqliteLedger::CreateUser(std::string_view name) {
  return InOwnTransaction(connection_, [&] { return In(CreateUserWrite{std::string(name)}); });
}

Result<Cents> SqliteLedger::Deposit(UserId user_id, Cents amount_cents,
                                    std::string_view request_id) {
  return InOwnTransaction(connection_, [&] {
    return In(DepositWrite{user_id, amount_cents, std::string(request_id)});
  });
}

Result<PacketRecord> SqliteLedger::CreatePacket(const domain::PacketSpec& spec,
                                                const std::vector<Cents>& shares,
                                                TimePoint created_at, TimePoint expires_at,
                                                std::string_view request_id) {
  return InOwnTransaction(connection_, [&] {
    return In(CreatePacketWrite{spec, shares, created_at, expires_at, std::string(request_id)});
  });
}

std::vector<WriteResult> SqliteLedger::WriteBatch(std::span<const Write> writes) {
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
    WriteResult result =
        std::visit([this](const auto& one) -> WriteResult { return In(one); }, write);
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

Result<bool> SqliteLedger::In(const CompleteLoadWrite&) {
  return true;  // no load intents here (ledger.h)
}

// Why a counter of its own rather than max(user_id) + 1: accounts are also made with explicit
// ids (a deposit, a grab's credit), and one of those at 2^53 - 1 would leave no id after it.
Result<UserRecord> SqliteLedger::In(const CreateUserWrite& write) {
  const std::string& name = write.name;
  auto next = GetMeta(kNextUserIdKey, 1);
  if (!next.ok()) return next.error();
  // The counter itself when it is free, else the first id after a run of held ones.
  auto free_id = SelectInt(
      "SELECT CASE WHEN NOT EXISTS (SELECT 1 FROM accounts WHERE user_id = ?1) THEN ?1 ELSE "
      "(SELECT a.user_id + 1 FROM accounts AS a WHERE a.user_id >= ?1 AND NOT EXISTS (SELECT 1 "
      "FROM accounts AS b WHERE b.user_id = a.user_id + 1) ORDER BY a.user_id LIMIT 1) END",
      {*next}, 0);
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

Result<Cents> SqliteLedger::In(const DepositWrite& write) {
  const auto& [user_id, amount_cents, request_id] = write;
  const auto idempotent = domain::CheckedDeposit(user_id, amount_cents, request_id);
  if (!idempotent.ok()) return idempotent.error();
  if (!request_id.empty()) {
    auto first = FindIdempotent(*idempotent);
    if (!first.ok()) return first.error();
    if (*first) return **first;  // a repeat: the first answer, nothing credited
  }
  // All the money there is, bounded: no balance, and so no later credit, can pass it.
  auto deposited = GetMeta(kDepositsKey, 0);
  if (!deposited.ok()) return deposited.error();
  REDPACKET_SQLITE_TRY(domain::CheckDepositWithinTotal(*deposited, amount_cents));
  auto balance = SelectInt(kSelectBalance, {user_id}, 0);
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
                           .Bind(domain::ToUnixMillis(clock_.Now()))
                           .Run());
  if (!request_id.empty()) REDPACKET_SQLITE_TRY(RecordIdempotent(*idempotent, new_balance));
  return new_balance;
}

Result<PacketRecord> SqliteLedger::In(const CreatePacketWrite& write) {
  const auto& [spec, shares, created_at, expires_at, request_id] = write;
  const auto idempotent = domain::CheckedCreatePacket(spec, shares, request_id);
  if (!idempotent.ok()) return idempotent.error();
  if (!request_id.empty()) {
    auto first = FindIdempotent(*idempotent);
    if (!first.ok()) return first.error();
    if (*first) {  // a repeat: the first packet, nothing debited
      Statements run{connection_};
      return domain::RepeatedCreate(**first, codec::ReadPacket(run, **first));
    }
  }
  // An account that does not exist has balance 0. Checked inside the write transaction, so
  // no concurrent debit can slip between the check and the debit.
  auto balance = SelectInt(kSelectBalance, {spec.sender_id}, 0);
  if (!balance.ok()) return balance.error();
  REDPACKET_SQLITE_TRY(domain::CheckFunds(*balance, spec));
  REDPACKET_SQLITE_TRY(
      connection_
          .Prepare("UPDATE accounts SET balance_cents = balance_cents - ?2 WHERE user_id = ?1")
          .Bind(spec.sender_id)
          .Bind(spec.total_cents)
          .Run());
  auto last = SelectInt("SELECT coalesce(max(packet_id), 0) FROM packets", {}, 0);
  if (!last.ok()) return last.error();

  const PacketRecord packet =
      PacketRecord::Created(*last + 1, spec, shares, created_at, expires_at);
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
          .BindBlob(codec::EncodeShares(shares))
          .Run());
  if (!request_id.empty()) REDPACKET_SQLITE_TRY(RecordIdempotent(*idempotent, packet.packet_id));
  return packet;
}

Result<std::optional<std::int64_t>> SqliteLedger::FindIdempotent(
    const domain::IdempotentRequest& request) {
  Query query = connection_.Prepare(
      "SELECT result, fingerprint FROM idempotency WHERE user_id = ? AND request_id = ? AND "
      "kind = ?");
  auto row = query.Bind(request.user_id).Bind(request.request_id).Bind(request.kind).Step();
  if (!row.ok()) return row.error();
  std::optional<domain::StoredAnswer> stored;
  if (*row) stored = domain::StoredAnswer{.result = query.Text(0), .fingerprint = query.Text(1)};
  return domain::EarlierAnswer(request, stored);
}

Status SqliteLedger::RecordIdempotent(const domain::IdempotentRequest& request,
                                      std::int64_t result) {
  return connection_
      .Prepare(
          "INSERT INTO idempotency (user_id, request_id, kind, result, fingerprint) "
          "VALUES (?, ?, ?, ?, ?)")
      .Bind(request.user_id)
      .Bind(request.request_id)
      .Bind(request.kind)
      .Bind(std::string_view(std::to_string(result)))
      .Bind(std::string_view(request.fingerprint))
      .Run();
}

Status SqliteLedger::Credit(UserId user_id, Cents amount_cents) {
  return connection_
      .Prepare(
          "INSERT INTO accounts (user_id, name, balance_cents) VALUES (?1, '', ?2) "
          "ON CONFLICT (user_id) DO UPDATE SET balance_cents = balance_cents + "
          "excluded.balance_cents")
      .Bind(user_id)
      .Bind(amount_cents)
      .Run();
}

Result<std::int64_t> SqliteLedger::GetMeta(std::string_view key, std::int64_t absent) {
  Query query = connection_.Prepare("SELECT value FROM meta WHERE key = ?");
  auto row = query.Bind(key).Step();
  if (!row.ok()) return row.error();
  return *row ? query.Int(0) : absent;
}

Status SqliteLedger::SetMeta(std::string_view key, std::int64_t value) {
  return connection_
      .Prepare(
          "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = "
          "?2")
      .Bind(key)
      .Bind(value)
      .Run();
}

}  // namespace sqlite
}  // namespace redpacket::ledger
