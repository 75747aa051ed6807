// The MariaDB ledger's writes: users, deposits and packet creation, each one transaction on the
// primary, with the rules of domain/ (deposit_rules, idempotency: a request_id bound to its
// request by (user, request_id, kind) and a fingerprint). Also the factory.
#include "ledger/mariadb/mariadb_ledger.h"

#include <fmt/format.h>

#include <limits>
#include <stdexcept>
#include <utility>

#include "domain/deposit_rules.h"
#include "domain/idempotency.h"
#include "ledger/codec/ledger_codec.h"
#include "ledger/codec/ledger_reads.h"
#include "ledger/mariadb/mariadb_ledger_impl.h"
#include "ledger/mariadb/schema.h"

namespace redpacket::ledger {

std::string MariaDbAddress(const MariaDbOptions& options) {
  return fmt::format("{}:{}", options.host, options.port);
}

std::unique_ptr<Ledger> OpenMariaDbLedger(const MariaDbOptions& options) {
  auto ledger = std::make_unique<mariadb::MariaDbLedger>(options);
  if (auto connected = ledger->Connect(); !connected.ok()) {
    throw std::runtime_error(connected.error().message);  // "cannot reach MariaDB at ..."
  }
  return ledger;
}

namespace mariadb {
namespace {

using domain::ErrorCode;
using domain::MakeError;

// Rows of ledger_counters (schema.cc, migration 2).
constexpr std::string_view kNextUserIdCounter = "next_user_id";
constexpr std::string_view kDepositsCounter = "deposits_cents";

}  // namespace

Status MariaDbLedger::Migrate() { return MigrateSchema(connection_); }

Result<std::int64_t> MariaDbLedger::SelectInt(std::string_view sql, std::int64_t absent) {
  Statements run{connection_};
  return codec::SelectInt(run, sql, {}, absent);
}

Result<std::int64_t> MariaDbLedger::LockCounter(std::string_view name) {
  auto rows = connection_.Query(fmt::format(
      "SELECT value FROM ledger_counters WHERE name = {} FOR UPDATE", connection_.Quote(name)));
  if (!rows.ok()) return rows.error();
  if (!rows->Next()) {
    return codec::Corrupt(fmt::format("the ledger counter '{}' is missing", name));
  }
  return rows->Int(0);
}

// Why a counter of its own rather than AUTO_INCREMENT: accounts are also made with explicit ids
// (a deposit, a grab's credit), and InnoDB moves AUTO_INCREMENT past them: one at 2^53 - 1 would
// leave no id after it. The counter's row lock serializes CreateUser across every API server.
Result<UserRecord> MariaDbLedger::CreateUser(std::string_view name) {
  auto transaction = Transaction::Begin(connection_, Transaction::Mode::kWrite);
  if (!transaction.ok()) return transaction.error();
  auto next = LockCounter(kNextUserIdCounter);
  if (!next.ok()) return next.error();
  // The counter itself when it is free, else the first id after a run of held ones. A credit
  // may make an account between this read and the INSERT: the key refuses it, try the next.
  auto free_id = SelectInt(
      fmt::format("SELECT IF(EXISTS (SELECT 1 FROM accounts WHERE user_id = {0}), "
                  "(SELECT a.user_id + 1 FROM accounts AS a WHERE a.user_id >= {0} AND NOT EXISTS "
                  "(SELECT 1 FROM accounts AS b WHERE b.user_id = a.user_id + 1) "
                  "ORDER BY a.user_id LIMIT 1), {0})",
                  *next),
      0);
  if (!free_id.ok()) return free_id.error();
  UserId user_id = *free_id;
  for (int attempt = 0;; ++attempt) {
    if (user_id < 1 || user_id > domain::kMaxUserId) {
      return MakeError(ErrorCode::kInternal, "no user id left below 2^53");  // rolled back
    }
    auto inserted = connection_.Execute(
        fmt::format("INSERT INTO accounts (user_id, name, balance_cents) VALUES ({}, {}, 0)",
                    user_id, connection_.Quote(name)));
    if (inserted.ok()) break;
    if (connection_.last_error_number() != kErrorDuplicateKey || attempt == 100) {
      return inserted.error();
    }
    ++user_id;
  }
  REDPACKET_MARIADB_TRY(
      connection_.Execute(fmt::format("UPDATE ledger_counters SET value = {} WHERE name = {}",
                                      user_id + 1, connection_.Quote(kNextUserIdCounter))));
  REDPACKET_MARIADB_TRY(transaction->Commit());
  return UserRecord{.user_id = user_id, .name = std::string(name), .balance_cents = 0};
}

Result<Cents> MariaDbLedger::Deposit(UserId user_id, Cents amount_cents,
                                     std::string_view request_id) {
  const auto idempotent = domain::CheckedDeposit(user_id, amount_cents, request_id);
  if (!idempotent.ok()) return idempotent.error();
  auto transaction = Transaction::Begin(connection_, Transaction::Mode::kWrite);
  if (!transaction.ok()) return transaction.error();
  // Creates the account if it is new and locks its row either way: concurrent deposits of one
  // user (and a repeat of one request_id) queue here, so the idempotency check below is exact.
  REDPACKET_MARIADB_TRY(connection_.Execute(
      fmt::format("INSERT INTO accounts (user_id, name, balance_cents) VALUES ({}, '', 0) "
                  "ON DUPLICATE KEY UPDATE user_id = user_id",
                  user_id)));
  if (!request_id.empty()) {
    auto first = FindIdempotent(*idempotent);
    if (!first.ok()) return first.error();
    if (*first) return **first;  // a repeat: the first answer, nothing credited (rolled back)
  }
  // All the money there is, bounded: no balance, and so no later credit, can pass it. The
  // counter's row lock serializes deposits (admin calls, never the hot path).
  auto deposited = LockCounter(kDepositsCounter);
  if (!deposited.ok()) return deposited.error();
  REDPACKET_MARIADB_TRY(domain::CheckDepositWithinTotal(*deposited, amount_cents));
  auto balance = SelectInt(
      fmt::format("SELECT balance_cents FROM accounts WHERE user_id = {} FOR UPDATE", user_id), 0);
  if (!balance.ok()) return balance.error();
  const Cents new_balance = *balance + amount_cents;
  REDPACKET_MARIADB_TRY(connection_.Execute(
      fmt::format("UPDATE ledger_counters SET value = value + {} WHERE name = {}", amount_cents,
                  connection_.Quote(kDepositsCounter))));
  REDPACKET_MARIADB_TRY(connection_.Execute(
      fmt::format("UPDATE accounts SET balance_cents = balance_cents + {} WHERE user_id = {}",
                  amount_cents, user_id)));
  REDPACKET_MARIADB_TRY(connection_.Execute(fmt::format(
      "INSERT INTO deposits (user_id, amount_cents, request_id, created_at_ms) "
      "VALUES ({}, {}, {}, {})",
      user_id, amount_cents, request_id.empty() ? "NULL" : connection_.Quote(request_id),
      domain::ToUnixMillis(clock_.Now()))));
  if (!request_id.empty()) REDPACKET_MARIADB_TRY(RecordIdempotent(*idempotent, new_balance));
  REDPACKET_MARIADB_TRY(transaction->Commit());
  return new_balance;
}

Result<PacketRecord> MariaDbLedger::CreatePacket(const domain::PacketSpec& spec,
                                                 const std::vector<Cents>& shares,
                                                 TimePoint created_at, TimePoint expires_at,
                                                 std::string_view request_id) {
  const auto idempotent = domain::CheckedCreatePacket(spec, shares, request_id);
  if (!idempotent.ok()) return idempotent.error();
  auto transaction = Transaction::Begin(connection_, Transaction::Mode::kWrite);
  if (!transaction.ok()) return transaction.error();
  // The sender's row, locked until commit: no concurrent debit (another API server creating a
  // packet of the same sender) can slip between this check and the debit, and a concurrent
  // repeat of the request_id waits here and then finds the first one's idempotency row.
  // An account that does not exist has balance 0.
  auto balance =
      SelectInt(fmt::format("SELECT balance_cents FROM accounts WHERE user_id = {} FOR UPDATE",
                            spec.sender_id),
                0);
  if (!balance.ok()) return balance.error();
  if (!request_id.empty()) {
    auto first = FindIdempotent(*idempotent);
    if (!first.ok()) return first.error();
    if (*first) {  // a repeat: the first packet, nothing debited (rolled back)
      Statements run{connection_};
      return domain::RepeatedCreate(**first, codec::ReadPacket(run, **first));
    }
  }
  REDPACKET_MARIADB_TRY(domain::CheckFunds(*balance, spec));
  REDPACKET_MARIADB_TRY(connection_.Execute(
      fmt::format("UPDATE accounts SET balance_cents = balance_cents - {} WHERE user_id = {}",
                  spec.total_cents, spec.sender_id)));
  REDPACKET_MARIADB_TRY(connection_.Execute(fmt::format(
      "INSERT INTO packets (sender_id, kind, greeting, total_cents, count, expires_in_s, "
      "receiver_id, created_at_ms, expires_at_ms, status) "
      "VALUES ({}, {}, {}, {}, {}, {}, {}, {}, {}, 'open')",
      spec.sender_id, connection_.Quote(domain::ToString(spec.kind)),
      connection_.Quote(spec.greeting), spec.total_cents, spec.count, spec.expires_in_s,
      SqlInt(spec.receiver_id), domain::ToUnixMillis(created_at),
      domain::ToUnixMillis(expires_at))));
  const auto packet_id = static_cast<PacketId>(connection_.LastInsertId());
  REDPACKET_MARIADB_TRY(connection_.Execute(
      fmt::format("INSERT INTO packet_shares (packet_id, shares) VALUES ({}, {})", packet_id,
                  HexLiteral(codec::EncodeShares(shares)))));
  if (!request_id.empty()) REDPACKET_MARIADB_TRY(RecordIdempotent(*idempotent, packet_id));
  // The load intent, with the debit: whatever happens to this server before the packet is in
  // Redis, some server's loader finishes the load (ledger.h, LoadIntents).
  REDPACKET_MARIADB_TRY(connection_.Execute(
      fmt::format("INSERT INTO packet_loads (packet_id, requested_at_ms) VALUES ({}, {})",
                  packet_id, domain::ToUnixMillis(created_at))));
  REDPACKET_MARIADB_TRY(transaction->Commit());
  return PacketRecord::Created(packet_id, spec, shares, created_at, expires_at);
}

Result<std::optional<std::int64_t>> MariaDbLedger::FindIdempotent(
    const domain::IdempotentRequest& request) {
  // A locking read: sees the latest committed row, not the transaction's snapshot.
  auto rows = connection_.Query(fmt::format(
      "SELECT result, fingerprint FROM idempotency WHERE user_id = {} AND request_id = {} "
      "AND kind = {} FOR UPDATE",
      request.user_id, connection_.Quote(request.request_id), connection_.Quote(request.kind)));
  if (!rows.ok()) return rows.error();
  std::optional<domain::StoredAnswer> stored;
  if (rows->Next())
    stored = domain::StoredAnswer{.result = rows->Text(0), .fingerprint = rows->Text(1)};
  return domain::EarlierAnswer(request, stored);
}

Status MariaDbLedger::RecordIdempotent(const domain::IdempotentRequest& request,
                                       std::int64_t result) {
  auto inserted = connection_.Execute(
      fmt::format("INSERT INTO idempotency (user_id, request_id, kind, result, fingerprint) "
                  "VALUES ({}, {}, {}, '{}', {})",
                  request.user_id, connection_.Quote(request.request_id),
                  connection_.Quote(request.kind), result, connection_.Quote(request.fingerprint)));
  if (!inserted.ok()) return inserted.error();
  return {};
}

}  // namespace mariadb
}  // namespace redpacket::ledger

namespace redpacket::ledger::mariadb {

Status MariaDbLedger::RequestLoad(PacketId packet_id) {
  REDPACKET_MARIADB_TRY(connection_.EnsureConnected());
  REDPACKET_MARIADB_TRY(connection_.Execute(
      fmt::format("INSERT IGNORE INTO packet_loads (packet_id, requested_at_ms) VALUES ({}, {})",
                  packet_id, domain::ToUnixMillis(clock_.Now()))));
  return {};
}

Status MariaDbLedger::CompleteLoad(PacketId packet_id) {
  REDPACKET_MARIADB_TRY(connection_.EnsureConnected());
  REDPACKET_MARIADB_TRY(
      connection_.Execute(fmt::format("DELETE FROM packet_loads WHERE packet_id = {}", packet_id)));
  return {};
}

Result<std::vector<PacketId>> MariaDbLedger::PendingLoads(std::size_t limit) {
  REDPACKET_MARIADB_TRY(connection_.EnsureConnected());
  auto rows = connection_.Query(
      fmt::format("SELECT packet_id FROM packet_loads ORDER BY packet_id LIMIT {}", limit));
  if (!rows.ok()) return rows.error();
  std::vector<PacketId> ids;
  while (rows->Next()) ids.push_back(rows->Int(0));
  return ids;
}

}  // namespace redpacket::ledger::mariadb
