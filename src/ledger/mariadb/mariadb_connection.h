// One MariaDB connection (Connector/C, text protocol): connect and reconnect, run statements,
// read result rows, quote values, and sort errors into retryable (kUnavailable: connection lost,
// lock wait timeout, deadlock, the disk or a table full, the server read-only) and not
// (kInternal). Blocking; NOT thread-safe.
#pragma once

#include <mysql.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "domain/status.h"
#include "ledger/mariadb/mariadb_ledger.h"

namespace redpacket::ledger::mariadb {

using domain::Error;
using domain::Result;
using domain::Status;

// Returns the error of a Status or Result<T> from the enclosing function if there is one.
#define REDPACKET_MARIADB_TRY(expression)                     \
  do {                                                        \
    if (auto try_result_ = (expression); !try_result_.ok()) { \
      return try_result_.error();                             \
    }                                                         \
  } while (false)

// MariaDB server error numbers the ledger reacts to.
inline constexpr unsigned kErrorDuplicateKey = 1062;  // ER_DUP_ENTRY
inline constexpr unsigned kErrorNoSuchTable = 1146;   // ER_NO_SUCH_TABLE
inline constexpr unsigned kErrorCheckFailed = 4025;   // ER_CONSTRAINT_FAILED
inline constexpr unsigned kErrorOutOfRange = 1264;    // ER_WARN_DATA_OUT_OF_RANGE (strict mode)

// A stored result set. Cells are read as text (the text protocol); blobs are binary-safe.
class Rows {
 public:
  explicit Rows(MYSQL_RES* result) : result_(result) {}
  Rows(Rows&& other) noexcept;
  Rows& operator=(Rows&&) = delete;
  ~Rows();

  // Moves to the next row; false after the last.
  bool Next();
  bool IsNull(int column) const { return row_[column] == nullptr; }
  std::int64_t Int(int column) const;  // 0 for NULL; a malformed number aborts (never happens)
  std::optional<std::int64_t> OptionalInt(int column) const;
  std::string Text(int column) const;
  std::span<const std::byte> Blob(int column) const;
  // Index of a column by name (SHOW SLAVE STATUS), or -1.
  int ColumnIndex(std::string_view name) const;

 private:
  MYSQL_RES* result_;
  MYSQL_ROW row_ = nullptr;
  unsigned long* lengths_ = nullptr;
};

class Connection {
 public:
  explicit Connection(MariaDbOptions options);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Connects if not connected (after a lost connection: reconnects). kUnavailable on failure.
  Status EnsureConnected();
  bool connected() const { return mysql_ != nullptr; }
  const MariaDbOptions& options() const { return options_; }

  // Runs one statement; the number of affected rows.
  Result<std::uint64_t> Execute(std::string_view sql);
  // Runs one statement that returns rows.
  Result<Rows> Query(std::string_view sql);
  // The AUTO_INCREMENT value of the last INSERT.
  std::uint64_t LastInsertId() const;
  // The server's error number of the last failed call (0 after a success).
  unsigned last_error_number() const { return last_error_number_; }

  // 'text', escaped for this connection's character set.
  std::string Quote(std::string_view text) const;

 private:
  Error Fail(std::string_view what);

  MariaDbOptions options_;
  MYSQL* mysql_ = nullptr;
  unsigned last_error_number_ = 0;
};

// X'0a1b...' (an empty blob: '').
std::string HexLiteral(std::span<const std::byte> bytes);
// The number, or NULL.
std::string SqlInt(std::optional<std::int64_t> value);

// START TRANSACTION ... COMMIT; rolls back when destroyed uncommitted (every early return).
class Transaction {
 public:
  enum class Mode { kWrite, kReadSnapshot };
  static Result<Transaction> Begin(Connection& connection, Mode mode);
  Transaction(Transaction&& other) noexcept : connection_(other.connection_) {
    other.connection_ = nullptr;
  }
  Transaction& operator=(Transaction&&) = delete;
  ~Transaction();
  Status Commit();

 private:
  explicit Transaction(Connection* connection) : connection_(connection) {}
  Connection* connection_;
};

}  // namespace redpacket::ledger::mariadb
