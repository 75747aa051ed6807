// The SQLite ledger's schema and its migrations. Tables are STRICT, so an integer overflow (which
// SQLite would silently turn into a REAL) fails the statement instead of storing a float as money.
#include "ledger/sqlite/schema.h"

#include <fmt/format.h>

#include <array>
#include <string_view>

namespace redpacket::ledger::sqlite {
namespace {

using domain::ErrorCode;
using domain::MakeError;

// Migration i (0-based) brings the schema from version i to version i + 1. Never edit a shipped
// migration: append a new one.
constexpr std::array<std::string_view, 3> kMigrations = {
    R"sql(
CREATE TABLE accounts (
  user_id INTEGER PRIMARY KEY,
  name TEXT NOT NULL DEFAULT '',
  -- Debits are checked before they are made; the CHECK is the last line of defence.
  balance_cents INTEGER NOT NULL CHECK (balance_cents >= 0)
) STRICT;

CREATE TABLE deposits (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  user_id INTEGER NOT NULL REFERENCES accounts (user_id),
  amount_cents INTEGER NOT NULL CHECK (amount_cents > 0),
  request_id TEXT,
  created_at_ms INTEGER NOT NULL
) STRICT;

CREATE TABLE packets (
  packet_id INTEGER PRIMARY KEY,
  sender_id INTEGER NOT NULL REFERENCES accounts (user_id),
  kind TEXT NOT NULL CHECK (kind IN ('lucky', 'equal')),
  greeting TEXT NOT NULL,
  total_cents INTEGER NOT NULL CHECK (total_cents > 0),
  count INTEGER NOT NULL CHECK (count > 0),
  expires_in_s INTEGER NOT NULL,
  receiver_id INTEGER,
  created_at_ms INTEGER NOT NULL,
  expires_at_ms INTEGER NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('open', 'exhausted', 'expired', 'refunded')),
  -- No oversell and conservation of money, enforced by the database itself.
  grabbed_count INTEGER NOT NULL DEFAULT 0 CHECK (grabbed_count BETWEEN 0 AND count),
  grabbed_cents INTEGER NOT NULL DEFAULT 0,
  refund_cents INTEGER,
  CHECK (grabbed_cents >= 0 AND grabbed_cents + coalesce(refund_cents, 0) <= total_cents)
) STRICT;
-- The shares, as one little-endian int64 blob written once at creation: a 1,000,000-share packet
-- is one row. Kept apart from the packet row because SQLite rewrites a whole record on UPDATE:
-- with the 8 MB blob inside, bumping grabbed_count once per applied batch would rewrite 8 MB
-- (measured: ~5,000 page writes per batch) instead of one small page.
CREATE TABLE packet_shares (
  packet_id INTEGER PRIMARY KEY REFERENCES packets (packet_id),
  shares BLOB NOT NULL
) STRICT;
CREATE INDEX packets_by_sender ON packets (sender_id, packet_id DESC);
-- Small: only the packets a restart must load back into memory.
CREATE INDEX packets_unfinished ON packets (packet_id) WHERE status IN ('open', 'expired');

-- UNIQUE (packet_id, user_id): one grab per user per packet, and a redelivered event is a no-op.
-- UNIQUE (packet_id, seq): one grab per share, so no packet ever pays a share twice.
-- The account FK is deferred because a grab may be the first thing a user ever receives: the
-- account is created right after the grab row, in the same transaction.
CREATE TABLE grabs (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  packet_id INTEGER NOT NULL REFERENCES packets (packet_id),
  user_id INTEGER NOT NULL REFERENCES accounts (user_id) DEFERRABLE INITIALLY DEFERRED,
  amount_cents INTEGER NOT NULL CHECK (amount_cents > 0),
  seq INTEGER NOT NULL CHECK (seq > 0),
  grabbed_at_ms INTEGER NOT NULL,
  UNIQUE (packet_id, user_id),
  UNIQUE (packet_id, seq)
) STRICT;
CREATE INDEX grabs_by_user ON grabs (user_id, id DESC);

CREATE TABLE refunds (
  packet_id INTEGER PRIMARY KEY REFERENCES packets (packet_id),
  user_id INTEGER NOT NULL REFERENCES accounts (user_id),
  amount_cents INTEGER NOT NULL CHECK (amount_cents >= 0),
  at_ms INTEGER NOT NULL
) STRICT;

-- result: what the first call answered (the balance of a deposit, the id of a created packet).
CREATE TABLE idempotency (
  user_id INTEGER NOT NULL,
  request_id TEXT NOT NULL,
  kind TEXT NOT NULL,
  result TEXT NOT NULL,
  PRIMARY KEY (user_id, request_id, kind)
) STRICT, WITHOUT ROWID;

CREATE TABLE meta (
  key TEXT PRIMARY KEY,
  value INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
)sql",
    // 2: a request_id is bound to its request (docs/API.md: the same request_id with another
    // request is 409 idempotency_conflict). Rows from version 1 keep '' and match any request.
    R"sql(
ALTER TABLE idempotency ADD COLUMN fingerprint TEXT NOT NULL DEFAULT '';
)sql",
    // 3: what the applier set aside (ledger.h SetAside): every message whose event the rules
    // refuse, whole, with its reason, written in the transaction that moves the stream's applied
    // position past it. `stream` is the meta key of that position. And two counters in meta:
    // 'deposits_cents', the sum of every deposit (bounded by kMaxTotalDepositsCents; total() is
    // exact below 2^53 and cannot overflow), and 'next_user_id' (absent: 1), which CreateUser
    // alone moves.
    R"sql(
CREATE TABLE dead_letters (
  stream TEXT NOT NULL,
  partition_id INTEGER NOT NULL,
  offset_value INTEGER NOT NULL,
  event_id TEXT,
  payload TEXT NOT NULL,
  reason TEXT NOT NULL,
  at_ms INTEGER NOT NULL,
  PRIMARY KEY (stream, partition_id, offset_value)
) STRICT, WITHOUT ROWID;
INSERT INTO meta (key, value)
  SELECT 'deposits_cents', CAST(min(total(amount_cents), 9.0e18) AS INTEGER) FROM deposits;
)sql",
};

constexpr int kLatestVersion = static_cast<int>(kMigrations.size());

Result<int> ReadVersion(Connection& connection) {
  Query query = connection.Prepare("SELECT coalesce(max(version), 0) FROM schema_version");
  REDPACKET_SQLITE_TRY(query.StepRow("schema version"));
  return static_cast<int>(query.Int(0));
}

Status CheckNotNewer(int version) {
  if (version > kLatestVersion) {
    return MakeError(ErrorCode::kInternal,
                     fmt::format("the ledger schema is version {}, newer than this binary's {}",
                                 version, kLatestVersion));
  }
  return {};
}

}  // namespace

Status MigrateSchema(Connection& connection) {
  if (connection.read_only()) {
    auto version = ReadVersion(connection);
    if (!version.ok()) return version.error();
    REDPACKET_SQLITE_TRY(CheckNotNewer(*version));
    if (*version < kLatestVersion) {
      return MakeError(ErrorCode::kInternal,
                       fmt::format("the read-only ledger {} has schema version {}, expected {}",
                                   connection.file().string(), *version, kLatestVersion));
    }
    return {};
  }
  auto transaction = Transaction::Begin(connection, Transaction::Mode::kWrite);
  if (!transaction.ok()) return transaction.error();
  REDPACKET_SQLITE_TRY(connection.Execute(
      "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL) STRICT"));
  auto version = ReadVersion(connection);
  if (!version.ok()) return version.error();
  REDPACKET_SQLITE_TRY(CheckNotNewer(*version));
  if (*version == kLatestVersion) return {};  // nothing written; the guard rolls back
  for (int next = *version; next < kLatestVersion; ++next) {
    REDPACKET_SQLITE_TRY(connection.Execute(kMigrations[static_cast<std::size_t>(next)]));
  }
  REDPACKET_SQLITE_TRY(connection.Execute("DELETE FROM schema_version"));
  REDPACKET_SQLITE_TRY(connection.Prepare("INSERT INTO schema_version (version) VALUES (?)")
                           .Bind(std::int64_t{kLatestVersion})
                           .Run());
  return transaction->Commit();
}

}  // namespace redpacket::ledger::sqlite
