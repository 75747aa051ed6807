// MariaDB Connector/C behind Result/Status: connect with timeouts, run text-protocol statements,
// classify errors. A connection error closes the handle, so the next call reconnects.
#include "ledger/mariadb/mariadb_connection.h"

#include <errmsg.h>
#include <fmt/format.h>
#include <mysqld_error.h>

#include <charconv>
#include <cstdlib>
#include <utility>

namespace redpacket::ledger::mariadb {
namespace {

using domain::ErrorCode;
using domain::MakeError;

// Errors after which the connection is gone: close it and reconnect on the next call.
bool IsConnectionError(unsigned number) {
  switch (number) {
    case CR_CONNECTION_ERROR:
    case CR_CONN_HOST_ERROR:
    case CR_SERVER_GONE_ERROR:
    case CR_SERVER_LOST:
    case CR_COMMANDS_OUT_OF_SYNC:
    case ER_SERVER_SHUTDOWN:
    case ER_CONNECTION_KILLED:
    case 4031:  // ER_CLIENT_INTERACTION_TIMEOUT: the server closed an idle connection
      return true;
    default:
      return number >= 2000 && number < 3000;  // every client-side error (CR_*) is transport
  }
}

// What may succeed on a retry: the server away, a lock wait timeout, a deadlock (InnoDB rolled
// the transaction back), too many connections, a statement killed on shutdown or timed out; and
// whatever the machine rather than the data causes: the disk or a table full, a write or read
// of a file that failed (errno 28 among them), no memory, the server read-only (a replica, or a
// primary set read-only for maintenance), a commit that failed in the engine.
bool IsRetryable(unsigned number) {
  if (IsConnectionError(number)) return true;
  switch (number) {
    case ER_LOCK_WAIT_TIMEOUT:
    case ER_LOCK_DEADLOCK:
    case ER_CON_COUNT_ERROR:
    case ER_QUERY_INTERRUPTED:
    case ER_STATEMENT_TIMEOUT:
    case ER_RECORD_FILE_FULL:
    case ER_DISK_FULL:
    case ER_LOCK_TABLE_FULL:
    case ER_TEMP_FILE_WRITE_FAILURE:
    case ER_ERROR_ON_WRITE:
    case ER_ERROR_ON_READ:
    case ER_CANT_CREATE_FILE:
    case ER_GET_ERRNO:
    case ER_OUT_OF_RESOURCES:
    case ER_OUTOFMEMORY:
    case ER_OPTION_PREVENTS_STATEMENT:
    case ER_READ_ONLY_MODE:
    case ER_INNODB_READ_ONLY:
    case ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION:
    case ER_ERROR_DURING_COMMIT:
      return true;
    default:
      return false;
  }
}

}  // namespace

Rows::Rows(Rows&& other) noexcept
    : result_(std::exchange(other.result_, nullptr)), row_(other.row_), lengths_(other.lengths_) {}

Rows::~Rows() {
  if (result_ != nullptr) mysql_free_result(result_);
}

bool Rows::Next() {
  row_ = mysql_fetch_row(result_);
  if (row_ == nullptr) return false;
  lengths_ = mysql_fetch_lengths(result_);
  return true;
}

std::int64_t Rows::Int(int column) const {
  if (row_[column] == nullptr) return 0;
  const char* begin = row_[column];
  const char* end = begin + lengths_[column];
  std::int64_t value = 0;
  const auto [stop, error] = std::from_chars(begin, end, value);
  // Only integer columns are read with Int: anything else is a bug in a query.
  if (error != std::errc() || stop != end) std::abort();
  return value;
}

std::optional<std::int64_t> Rows::OptionalInt(int column) const {
  if (row_[column] == nullptr) return std::nullopt;
  return Int(column);
}

std::string Rows::Text(int column) const {
  if (row_[column] == nullptr) return {};
  return std::string(row_[column], lengths_[column]);
}

std::span<const std::byte> Rows::Blob(int column) const {
  if (row_[column] == nullptr) return {};
  return {reinterpret_cast<const std::byte*>(row_[column]), lengths_[column]};
}

int Rows::ColumnIndex(std::string_view name) const {
  const unsigned count = mysql_num_fields(result_);
  MYSQL_FIELD* fields = mysql_fetch_fields(result_);
  for (unsigned i = 0; i < count; ++i) {
    if (name == fields[i].name) return static_cast<int>(i);
  }
  return -1;
}

Connection::Connection(MariaDbOptions options) : options_(std::move(options)) {}

Connection::~Connection() {
  if (mysql_ != nullptr) mysql_close(mysql_);
}

Status Connection::EnsureConnected() {
  if (mysql_ != nullptr) return {};
  MYSQL* mysql = mysql_init(nullptr);
  if (mysql == nullptr) return MakeError(ErrorCode::kUnavailable, "mysql_init: out of memory");
  const unsigned connect_timeout = static_cast<unsigned>(options_.connect_timeout.count());
  const unsigned read_timeout = static_cast<unsigned>(options_.read_timeout.count());
  const unsigned write_timeout = static_cast<unsigned>(options_.write_timeout.count());
  // A million-share packet is one 8 MB blob, sent as 16 MB of hex.
  const unsigned long max_packet = 256ul << 20;
  mysql_options(mysql, MYSQL_OPT_CONNECT_TIMEOUT, &connect_timeout);
  mysql_options(mysql, MYSQL_OPT_READ_TIMEOUT, &read_timeout);
  mysql_options(mysql, MYSQL_OPT_WRITE_TIMEOUT, &write_timeout);
  mysql_options(mysql, MYSQL_OPT_MAX_ALLOWED_PACKET, &max_packet);
  mysql_options(mysql, MYSQL_SET_CHARSET_NAME, "utf8mb4");
  // Strict: a value that does not fit fails the statement instead of being truncated.
  mysql_options(mysql, MYSQL_INIT_COMMAND,
                "SET SESSION sql_mode = 'STRICT_ALL_TABLES,ERROR_FOR_DIVISION_BY_ZERO,"
                "NO_ENGINE_SUBSTITUTION', SESSION innodb_lock_wait_timeout = 10");
  if (mysql_real_connect(mysql, options_.host.c_str(), options_.user.c_str(),
                         options_.password.c_str(),
                         options_.database.empty() ? nullptr : options_.database.c_str(),
                         static_cast<unsigned>(options_.port), nullptr, 0) == nullptr) {
    last_error_number_ = mysql_errno(mysql);
    std::string message =
        fmt::format("cannot reach MariaDB at {}: {}", MariaDbAddress(options_), mysql_error(mysql));
    mysql_close(mysql);
    return MakeError(ErrorCode::kUnavailable, std::move(message));
  }
  mysql_ = mysql;
  last_error_number_ = 0;
  return {};
}

Error Connection::Fail(std::string_view what) {
  last_error_number_ = mysql_errno(mysql_);
  std::string message = fmt::format("MariaDB {} ({}): error {}: {}", MariaDbAddress(options_), what,
                                    last_error_number_, mysql_error(mysql_));
  const ErrorCode code =
      IsRetryable(last_error_number_) ? ErrorCode::kUnavailable : ErrorCode::kInternal;
  if (IsConnectionError(last_error_number_)) {
    mysql_close(mysql_);
    mysql_ = nullptr;
  }
  return MakeError(code, std::move(message));
}

Result<std::uint64_t> Connection::Execute(std::string_view sql) {
  if (mysql_ == nullptr) {
    return MakeError(ErrorCode::kUnavailable,
                     fmt::format("MariaDB {}: not connected", MariaDbAddress(options_)));
  }
  if (mysql_real_query(mysql_, sql.data(), sql.size()) != 0) return Fail(sql.substr(0, 60));
  // A statement that unexpectedly returns rows: drain them so the connection stays usable.
  if (MYSQL_RES* result = mysql_store_result(mysql_); result != nullptr) mysql_free_result(result);
  last_error_number_ = 0;
  return static_cast<std::uint64_t>(mysql_affected_rows(mysql_));
}

Result<Rows> Connection::Query(std::string_view sql) {
  if (mysql_ == nullptr) {
    return MakeError(ErrorCode::kUnavailable,
                     fmt::format("MariaDB {}: not connected", MariaDbAddress(options_)));
  }
  if (mysql_real_query(mysql_, sql.data(), sql.size()) != 0) return Fail(sql.substr(0, 60));
  MYSQL_RES* result = mysql_store_result(mysql_);
  if (result == nullptr) {
    if (mysql_errno(mysql_) != 0) return Fail("reading rows");
    return MakeError(ErrorCode::kInternal, "a query that returns no rows");
  }
  last_error_number_ = 0;
  return Rows(result);
}

std::uint64_t Connection::LastInsertId() const { return mysql_insert_id(mysql_); }

std::string Connection::Quote(std::string_view text) const {
  std::string quoted(text.size() * 2 + 2, '\0');
  quoted[0] = '\'';
  const unsigned long length =
      mysql_ != nullptr ? mysql_real_escape_string(mysql_, quoted.data() + 1, text.data(),
                                                   static_cast<unsigned long>(text.size()))
                        : mysql_escape_string(quoted.data() + 1, text.data(),
                                              static_cast<unsigned long>(text.size()));
  quoted.resize(length + 1);
  quoted.push_back('\'');
  return quoted;
}

std::string HexLiteral(std::span<const std::byte> bytes) {
  if (bytes.empty()) return "''";
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string literal;
  literal.reserve(bytes.size() * 2 + 3);
  literal += "X'";
  for (std::byte byte : bytes) {
    const auto value = static_cast<unsigned>(byte);
    literal += kDigits[value >> 4];
    literal += kDigits[value & 0xf];
  }
  literal += '\'';
  return literal;
}

std::string SqlInt(std::optional<std::int64_t> value) {
  return value ? std::to_string(*value) : std::string("NULL");
}

Result<Transaction> Transaction::Begin(Connection& connection, Mode mode) {
  REDPACKET_MARIADB_TRY(connection.EnsureConnected());
  // A snapshot read: every SELECT of the transaction sees one consistent state (audit sums).
  REDPACKET_MARIADB_TRY(connection.Execute(
      mode == Mode::kWrite ? "START TRANSACTION" : "START TRANSACTION WITH CONSISTENT SNAPSHOT"));
  return Transaction(&connection);
}

Transaction::~Transaction() {
  if (connection_ != nullptr && connection_->connected()) (void)connection_->Execute("ROLLBACK");
}

Status Transaction::Commit() {
  Connection* connection = std::exchange(connection_, nullptr);
  auto committed = connection->Execute("COMMIT");
  if (!committed.ok()) return committed.error();
  return {};
}

}  // namespace redpacket::ledger::mariadb
