// The sqlite3 RAII layer: opening with the ledger's pragmas, the statement cache, transactions.
#include "ledger/sqlite/sqlite_connection.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <map>
#include <stdexcept>
#include <utility>

namespace redpacket::ledger::sqlite {
namespace {

using domain::ErrorCode;
using domain::MakeError;

constexpr int kBusyTimeoutMillis = 5000;

}  // namespace

domain::ErrorCode ErrorCodeFor(int sqlite_code) {
  switch (sqlite_code & 0xff) {
    // Another writer holds the lock, or the machine fails the database for now: the disk full,
    // an I/O error, the file read-only or not openable, no memory, a lock protocol race, the
    // schema changed under a statement, a transaction rolled back under it by one of these.
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_FULL:
    case SQLITE_IOERR:
    case SQLITE_READONLY:
    case SQLITE_CANTOPEN:
    case SQLITE_NOMEM:
    case SQLITE_PROTOCOL:
    case SQLITE_NOLFS:
    case SQLITE_SCHEMA:
    case SQLITE_ABORT:
      return ErrorCode::kUnavailable;
    // The data or the statement: a constraint broken, a damaged file (retrying cannot help, and
    // a damaged ledger needs an operator), a misuse.
    default:
      return ErrorCode::kInternal;
  }
}

// ---- WriteGate ----

std::shared_ptr<WriteGate> WriteGate::For(const std::filesystem::path& file) {
  static std::mutex registry_mutex;
  static std::map<std::string, std::weak_ptr<WriteGate>> registry;
  std::error_code error;
  std::filesystem::path key = std::filesystem::weakly_canonical(file, error);
  if (error) key = std::filesystem::absolute(file);
  std::lock_guard lock(registry_mutex);
  std::weak_ptr<WriteGate>& slot = registry[key.string()];
  std::shared_ptr<WriteGate> gate = slot.lock();
  if (!gate) {
    gate = std::make_shared<WriteGate>();
    slot = gate;
  }
  return gate;
}

void WriteGate::Acquire(bool background) {
  std::unique_lock lock(mutex_);
  if (background) {
    released_.wait(lock, [this] { return !held_ && foreground_waiting_ == 0; });
  } else {
    ++foreground_waiting_;
    released_.wait(lock, [this] { return !held_; });
    --foreground_waiting_;
  }
  held_ = true;
}

void WriteGate::Release() {
  {
    std::lock_guard lock(mutex_);
    held_ = false;
  }
  released_.notify_all();
}

// ---- Query ----

Query::Query(Connection* connection, sqlite3_stmt* statement, std::optional<Error> error)
    : connection_(connection), statement_(statement), error_(std::move(error)) {}

Query::Query(Query&& other) noexcept
    : connection_(other.connection_),
      statement_(std::exchange(other.statement_, nullptr)),
      error_(std::move(other.error_)),
      next_index_(other.next_index_) {}

Query::~Query() {
  if (statement_ != nullptr) {
    sqlite3_reset(statement_);
    sqlite3_clear_bindings(statement_);
  }
}

Query& Query::Bind(std::int64_t value) {
  if (!error_ && sqlite3_bind_int64(statement_, next_index_, value) != SQLITE_OK) {
    error_ = connection_->LastError("bind");
  }
  ++next_index_;
  return *this;
}

Query& Query::Bind(std::string_view text) {
  // SQLITE_TRANSIENT: the caller's buffer may not outlive the statement's execution.
  if (!error_ && sqlite3_bind_text64(statement_, next_index_, text.data(), text.size(),
                                     SQLITE_TRANSIENT, SQLITE_UTF8) != SQLITE_OK) {
    error_ = connection_->LastError("bind");
  }
  ++next_index_;
  return *this;
}

Query& Query::Bind(std::optional<std::int64_t> value) {
  if (value) return Bind(*value);
  if (!error_ && sqlite3_bind_null(statement_, next_index_) != SQLITE_OK) {
    error_ = connection_->LastError("bind");
  }
  ++next_index_;
  return *this;
}

Query& Query::BindBlob(std::span<const std::byte> bytes) {
  // A zero-length blob must still be a BLOB, not NULL: sqlite3_bind_blob64 with a null pointer
  // binds NULL, so point at a static byte instead.
  static constexpr std::byte kEmpty{};
  const void* data = bytes.empty() ? &kEmpty : bytes.data();
  if (!error_ && sqlite3_bind_blob64(statement_, next_index_, data, bytes.size(), SQLITE_STATIC) !=
                     SQLITE_OK) {
    error_ = connection_->LastError("bind");
  }
  ++next_index_;
  return *this;
}

Result<bool> Query::Step() {
  if (error_) return *error_;
  const int code = sqlite3_step(statement_);
  if (code == SQLITE_ROW) return true;
  if (code == SQLITE_DONE) return false;
  error_ = connection_->LastError(sqlite3_sql(statement_));
  return *error_;
}

Status Query::Run() {
  while (true) {
    auto row = Step();
    if (!row.ok()) return row.error();
    if (!*row) return {};
  }
}

Status Query::StepRow(std::string_view what) {
  auto row = Step();
  if (!row.ok()) return row.error();
  if (!*row) return MakeError(ErrorCode::kInternal, fmt::format("no row: {}", what));
  return {};
}

std::int64_t Query::Int(int column) const { return sqlite3_column_int64(statement_, column); }

std::optional<std::int64_t> Query::OptionalInt(int column) const {
  if (sqlite3_column_type(statement_, column) == SQLITE_NULL) return std::nullopt;
  return Int(column);
}

std::string Query::Text(int column) const {
  const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(statement_, column));
  const int bytes = sqlite3_column_bytes(statement_, column);
  return text == nullptr ? std::string() : std::string(text, static_cast<std::size_t>(bytes));
}

std::span<const std::byte> Query::Blob(int column) const {
  const auto* data = static_cast<const std::byte*>(sqlite3_column_blob(statement_, column));
  const int bytes = sqlite3_column_bytes(statement_, column);
  if (data == nullptr) return {};
  return {data, static_cast<std::size_t>(bytes)};
}

// ---- Connection ----

Connection::Connection(const std::filesystem::path& file, bool read_only)
    : file_(file), read_only_(read_only) {
  if (!read_only) gate_ = WriteGate::For(file);
  const int flags =
      (read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) |
      SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE;
  const int code = sqlite3_open_v2(file.c_str(), &db_, flags, nullptr);
  if (code != SQLITE_OK) {
    std::string message = db_ != nullptr ? sqlite3_errmsg(db_) : sqlite3_errstr(code);
    sqlite3_close_v2(db_);
    db_ = nullptr;
    throw std::runtime_error(fmt::format("cannot open the ledger database {}{}: {}", file.string(),
                                         read_only ? " (read-only)" : "", message));
  }
  sqlite3_busy_timeout(db_, kBusyTimeoutMillis);
  // WAL: readers never block the writer. synchronous=FULL: a commit is on disk when COMMIT
  // returns (NORMAL would lose the last commits on power loss, and a grab acknowledged through
  // the ledger must not be lost). foreign_keys: off by default in SQLite.
  std::string pragmas =
      "PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY;"
      "PRAGMA cache_size = -32768;";
  if (!read_only) pragmas += "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;";
  if (Status status = Execute(pragmas); !status.ok()) {
    sqlite3_close_v2(db_);
    db_ = nullptr;
    throw std::runtime_error(fmt::format("cannot configure the ledger database {}: {}",
                                         file.string(), status.error().message));
  }
}

Connection::~Connection() {
  statements_.clear();  // statements must be finalized before the connection closes
  if (db_ != nullptr && sqlite3_close(db_) != SQLITE_OK) {
    spdlog::error("closing the ledger database {}: {}", file_.string(), sqlite3_errmsg(db_));
    sqlite3_close_v2(db_);
  }
}

Query Connection::Prepare(std::string_view sql) {
  if (auto found = statements_.find(sql); found != statements_.end()) {
    return Query(this, found->second.get(), std::nullopt);
  }
  sqlite3_stmt* statement = nullptr;
  const int code = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()),
                                      SQLITE_PREPARE_PERSISTENT, &statement, nullptr);
  if (code != SQLITE_OK || statement == nullptr) {
    sqlite3_finalize(statement);
    return Query(this, nullptr, LastError(fmt::format("prepare {}", sql)));
  }
  statements_.emplace(std::string(sql), statement);
  return Query(this, statement, std::nullopt);
}

Status Connection::Execute(std::string_view sql) {
  const std::string text(sql);
  char* message = nullptr;
  const int code = sqlite3_exec(db_, text.c_str(), nullptr, nullptr, &message);
  if (code == SQLITE_OK) return {};
  last_error_code_ = sqlite3_extended_errcode(db_);
  Error error{
      ErrorCodeFor(code),
      fmt::format("sqlite: {} ({})", message != nullptr ? message : sqlite3_errstr(code), code)};
  sqlite3_free(message);
  return error;
}

Error Connection::LastError(std::string_view context) const {
  const int code = sqlite3_extended_errcode(db_);
  last_error_code_ = code;
  return Error{ErrorCodeFor(code),
               fmt::format("sqlite: {} ({}) in: {}", sqlite3_errmsg(db_), code, context)};
}

// ---- Transaction ----

Result<Transaction> Transaction::Begin(Connection& connection, Mode mode) {
  const bool gated = mode == Mode::kWrite;
  if (gated) connection.AcquireWriteGate();
  if (Status begun =
          connection.Prepare(gated ? "BEGIN IMMEDIATE" : "BEGIN DEFERRED").Run();
      !begun.ok()) {
    if (gated) connection.ReleaseWriteGate();
    return begun.error();
  }
  return Transaction(&connection, gated);
}

Transaction::Transaction(Transaction&& other) noexcept
    : connection_(std::exchange(other.connection_, nullptr)), gated_(other.gated_) {}

Transaction::~Transaction() {
  if (connection_ != nullptr) Rollback();
}

Status Transaction::Commit() {
  Connection* connection = std::exchange(connection_, nullptr);
  Status status = connection->Prepare("COMMIT").Run();
  if (!status.ok() && !connection->autocommit()) {
    // A failed COMMIT (e.g. busy) leaves the transaction open; close it so the connection is
    // usable again.
    connection->Prepare("ROLLBACK").Run();
  }
  if (gated_) connection->ReleaseWriteGate();
  return status;
}

void Transaction::Rollback() {
  // SQLite rolls back by itself after some errors (I/O, full disk); a second ROLLBACK would fail.
  if (!connection_->autocommit()) {
    if (Status status = connection_->Prepare("ROLLBACK").Run(); !status.ok()) {
      spdlog::error("ledger rollback failed: {}", status.error().message);
    }
  }
  if (gated_) connection_->ReleaseWriteGate();
}

}  // namespace redpacket::ledger::sqlite
