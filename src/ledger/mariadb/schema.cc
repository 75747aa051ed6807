// The MariaDB ledger's schema and its migrations: the SQLite ledger's tables in InnoDB, with
// BIGINT money, CHECK constraints (enforced since MariaDB 10.2) and utf8mb4_bin text (request ids
// compare byte for byte). DDL commits implicitly in MariaDB, so concurrent migrators are
// serialized with GET_LOCK and every statement is written to be re-runnable (IF NOT EXISTS,
// INSERT IGNORE).
#include "ledger/mariadb/schema.h"

#include <fmt/format.h>

#include <array>
#include <string_view>
#include <vector>

namespace redpacket::ledger::mariadb {
namespace {

using domain::ErrorCode;
using domain::MakeError;

#define REDPACKET_TABLE_OPTIONS " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"

// Migration i (0-based) brings the schema from version i to version i + 1. Never edit a shipped
// migration: append a new one.
const std::vector<std::vector<std::string_view>>& Migrations() {
  static const std::vector<std::vector<std::string_view>> migrations = {
      {
          R"sql(
CREATE TABLE IF NOT EXISTS accounts (
  -- AUTO_INCREMENT on the primary: user ids are unique across every API server. A grab may
  -- create an account with an explicit id; InnoDB then moves the counter past it.
  user_id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  name VARCHAR(255) NOT NULL DEFAULT '',
  -- Debits are checked before they are made; the CHECK is the last line of defence.
  balance_cents BIGINT NOT NULL,
  CONSTRAINT accounts_balance_not_negative CHECK (balance_cents >= 0)
))sql" REDPACKET_TABLE_OPTIONS,
          R"sql(
CREATE TABLE IF NOT EXISTS deposits (
  id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  user_id BIGINT NOT NULL,
  amount_cents BIGINT NOT NULL,
  request_id VARCHAR(255) NULL,
  created_at_ms BIGINT NOT NULL,
  KEY deposits_by_user (user_id),
  CONSTRAINT deposits_account FOREIGN KEY (user_id) REFERENCES accounts (user_id),
  CONSTRAINT deposits_positive CHECK (amount_cents > 0)
))sql" REDPACKET_TABLE_OPTIONS,
          R"sql(
CREATE TABLE IF NOT EXISTS packets (
  -- AUTO_INCREMENT on the primary: packet ids are unique across every API server.
  packet_id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  sender_id BIGINT NOT NULL,
  kind VARCHAR(16) NOT NULL,
  greeting TEXT NOT NULL,
  total_cents BIGINT NOT NULL,
  count BIGINT NOT NULL,
  expires_in_s BIGINT NOT NULL,
  receiver_id BIGINT NULL,
  created_at_ms BIGINT NOT NULL,
  expires_at_ms BIGINT NOT NULL,
  status VARCHAR(16) NOT NULL,
  grabbed_count BIGINT NOT NULL DEFAULT 0,
  grabbed_cents BIGINT NOT NULL DEFAULT 0,
  refund_cents BIGINT NULL,
  KEY packets_by_sender (sender_id, packet_id),
  -- Only the packets a restart must load back into memory are 'open' or 'expired'.
  KEY packets_by_status (status, packet_id),
  CONSTRAINT packets_sender FOREIGN KEY (sender_id) REFERENCES accounts (user_id),
  CONSTRAINT packets_kind CHECK (kind IN ('lucky', 'equal')),
  CONSTRAINT packets_status CHECK (status IN ('open', 'exhausted', 'expired', 'refunded')),
  CONSTRAINT packets_total CHECK (total_cents > 0 AND count > 0),
  -- No oversell and conservation of money, enforced by the database itself.
  CONSTRAINT packets_no_oversell CHECK (grabbed_count BETWEEN 0 AND count),
  CONSTRAINT packets_conserve_money
    CHECK (grabbed_cents >= 0 AND grabbed_cents + coalesce(refund_cents, 0) <= total_cents)
))sql" REDPACKET_TABLE_OPTIONS,
          // The shares, one little-endian int64 blob written once at creation, apart from the
          // packet row so the per-batch counter UPDATE of a packet never rewrites an 8 MB row.
          R"sql(
CREATE TABLE IF NOT EXISTS packet_shares (
  packet_id BIGINT NOT NULL PRIMARY KEY,
  shares LONGBLOB NOT NULL,
  CONSTRAINT packet_shares_packet FOREIGN KEY (packet_id) REFERENCES packets (packet_id)
))sql" REDPACKET_TABLE_OPTIONS,
          // UNIQUE (packet_id, user_id): one grab per user per packet; a redelivered event is a
          // no-op. UNIQUE (packet_id, seq): one grab per share, so no packet ever pays a share
          // twice. No foreign key to accounts: a grab may be the first thing a user ever receives,
          // and the account is created by the credit that follows in the same transaction.
          R"sql(
CREATE TABLE IF NOT EXISTS grabs (
  id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  packet_id BIGINT NOT NULL,
  user_id BIGINT NOT NULL,
  amount_cents BIGINT NOT NULL,
  seq BIGINT NOT NULL,
  grabbed_at_ms BIGINT NOT NULL,
  UNIQUE KEY grabs_one_per_user (packet_id, user_id),
  UNIQUE KEY grabs_one_per_share (packet_id, seq),
  KEY grabs_by_user (user_id, id),
  CONSTRAINT grabs_packet FOREIGN KEY (packet_id) REFERENCES packets (packet_id),
  CONSTRAINT grabs_positive CHECK (amount_cents > 0 AND seq > 0)
))sql" REDPACKET_TABLE_OPTIONS,
          R"sql(
CREATE TABLE IF NOT EXISTS refunds (
  packet_id BIGINT NOT NULL PRIMARY KEY,
  user_id BIGINT NOT NULL,
  amount_cents BIGINT NOT NULL,
  at_ms BIGINT NOT NULL,
  CONSTRAINT refunds_packet FOREIGN KEY (packet_id) REFERENCES packets (packet_id),
  CONSTRAINT refunds_not_negative CHECK (amount_cents >= 0)
))sql" REDPACKET_TABLE_OPTIONS,
          // result: what the first call answered (the balance of a deposit, the id of a packet);
          // fingerprint: what the request_id is bound to (domain/idempotency.h).
          R"sql(
CREATE TABLE IF NOT EXISTS idempotency (
  user_id BIGINT NOT NULL,
  request_id VARCHAR(255) NOT NULL,
  kind VARCHAR(32) NOT NULL,
  result VARCHAR(32) NOT NULL,
  fingerprint TEXT NOT NULL,
  PRIMARY KEY (user_id, request_id, kind)
))sql" REDPACKET_TABLE_OPTIONS,
          // Per (stream, partition), the offset of the last event applied; never moves back.
          R"sql(
CREATE TABLE IF NOT EXISTS applied_offsets (
  stream VARCHAR(255) NOT NULL,
  partition_id INT NOT NULL,
  offset_value BIGINT NOT NULL,
  PRIMARY KEY (stream, partition_id),
  CONSTRAINT applied_offsets_valid CHECK (partition_id >= 0 AND offset_value >= 0)
))sql" REDPACKET_TABLE_OPTIONS,
  }, {
      // 2: what the worker set aside (ledger.h SetAside): each message whose event the rules
      // refuse, whole (the bytes as read), with its reason, written in the transaction that
      // moves its partition's applied offset past it.
      R"sql(
CREATE TABLE IF NOT EXISTS dead_letters (
  stream VARCHAR(255) NOT NULL,
  partition_id INT NOT NULL,
  offset_value BIGINT NOT NULL,
  event_id VARCHAR(255) NULL,
  payload LONGBLOB NOT NULL,
  reason TEXT NOT NULL,
  at_ms BIGINT NOT NULL,
  PRIMARY KEY (stream, partition_id, offset_value)
))sql" REDPACKET_TABLE_OPTIONS,
      // Counters of the ledger's own: 'next_user_id', which only CreateUser moves (accounts made
      // with an explicit id would push AUTO_INCREMENT to 2^53 - 1 and leave no id after it), and
      // 'deposits_cents', the sum of every deposit, bounded by kMaxTotalDepositsCents.
      R"sql(
CREATE TABLE IF NOT EXISTS ledger_counters (
  name VARCHAR(64) NOT NULL PRIMARY KEY,
  value BIGINT NOT NULL
))sql" REDPACKET_TABLE_OPTIONS,
      "INSERT IGNORE INTO ledger_counters (name, value) VALUES ('next_user_id', 1)",
      "INSERT IGNORE INTO ledger_counters (name, value) "
      "SELECT 'deposits_cents', LEAST(coalesce(sum(amount_cents), 0), 9000000000000000000) "
      "FROM deposits",
  
  }, {
      // 3: load intents (ledger.h): a packet whose load into Redis is not known to be done. Small:
      // an intent lives from its packet's creation to the end of its first load (milliseconds),
      // or while a lost packet waits to be restored.
      R"sql(
CREATE TABLE IF NOT EXISTS packet_loads (
  packet_id BIGINT NOT NULL PRIMARY KEY,
  requested_at_ms BIGINT NOT NULL
))sql" REDPACKET_TABLE_OPTIONS,
  }};
  return migrations;
}

#undef REDPACKET_TABLE_OPTIONS

int LatestVersion() { return static_cast<int>(Migrations().size()); }

// 0 when the schema_version table does not exist yet.
Result<int> ReadVersion(Connection& connection) {
  auto rows = connection.Query("SELECT coalesce(max(version), 0) FROM schema_version");
  if (!rows.ok()) {
    if (connection.last_error_number() == kErrorNoSuchTable) return 0;
    return rows.error();
  }
  return rows->Next() ? static_cast<int>(rows->Int(0)) : 0;
}

Status CheckNotNewer(int version) {
  if (version > LatestVersion()) {
    return MakeError(ErrorCode::kInternal,
                     fmt::format("the ledger schema is version {}, newer than this binary's {}",
                                 version, LatestVersion()));
  }
  return {};
}

// Holds a named server lock for the lifetime of the object (one migrator at a time).
class MigrationLock {
 public:
  static Result<MigrationLock> Acquire(Connection& connection) {
    auto rows = connection.Query("SELECT GET_LOCK('redpacket_ledger_migrate', 60)");
    if (!rows.ok()) return rows.error();
    if (!rows->Next() || rows->Int(0) != 1) {
      return MakeError(ErrorCode::kUnavailable, "another server is migrating the ledger (60 s)");
    }
    return MigrationLock(&connection);
  }
  MigrationLock(MigrationLock&& other) noexcept : connection_(other.connection_) {
    other.connection_ = nullptr;
  }
  ~MigrationLock() {
    if (connection_ != nullptr && connection_->connected()) {
      (void)connection_->Query("SELECT RELEASE_LOCK('redpacket_ledger_migrate')");
    }
  }

 private:
  explicit MigrationLock(Connection* connection) : connection_(connection) {}
  Connection* connection_;
};

}  // namespace

Status MigrateSchema(Connection& connection) {
  REDPACKET_MARIADB_TRY(connection.EnsureConnected());
  // Read first: an up-to-date schema needs no write (a replica reader migrates nothing).
  auto version = ReadVersion(connection);
  if (!version.ok()) return version.error();
  REDPACKET_MARIADB_TRY(CheckNotNewer(*version));
  if (*version == LatestVersion()) return {};

  auto lock = MigrationLock::Acquire(connection);
  if (!lock.ok()) return lock.error();
  REDPACKET_MARIADB_TRY(connection.Execute(
      "CREATE TABLE IF NOT EXISTS schema_version (version INT NOT NULL PRIMARY KEY, "
      "applied_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP) ENGINE=InnoDB"));
  version = ReadVersion(connection);  // again, under the lock: another server may have migrated
  if (!version.ok()) return version.error();
  REDPACKET_MARIADB_TRY(CheckNotNewer(*version));
  for (int next = *version; next < LatestVersion(); ++next) {
    for (std::string_view statement : Migrations()[static_cast<std::size_t>(next)]) {
      REDPACKET_MARIADB_TRY(connection.Execute(statement));
    }
    REDPACKET_MARIADB_TRY(connection.Execute(
        fmt::format("INSERT INTO schema_version (version) VALUES ({})", next + 1)));
  }
  return {};
}

}  // namespace redpacket::ledger::mariadb
