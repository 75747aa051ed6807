// A thin RAII layer over the sqlite3 C API for the SQLite ledger: one connection with a cache of
// prepared statements, a borrowed statement (Query) that resets itself, and a transaction guard.
// Not thread-safe: one connection is driven by one thread at a time.
#pragma once

#include <sqlite3.h>

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>

#include "domain/status.h"

namespace redpacket::ledger::sqlite {

using domain::Error;
using domain::Result;
using domain::Status;

// Returns the error of a Status or Result<T> from the enclosing function if there is one.
#define REDPACKET_SQLITE_TRY(expression)                      \
  do {                                                        \
    if (auto try_result_ = (expression); !try_result_.ok()) { \
      return try_result_.error();                             \
    }                                                         \
  } while (false)

class Connection;

// How an SQLite result code reads to the ledger's callers: kUnavailable for what may pass on a
// retry (busy or locked, and whatever the machine causes: the disk full, an I/O error, the file
// read-only or not openable, no memory), kInternal for the rest (a broken constraint, a damaged
// file, a misuse).
domain::ErrorCode ErrorCodeFor(int sqlite_code);

// Serializes, inside this process, the write transactions of every connection to one database
// file. A waiter wakes the moment the holder finishes, where SQLite's busy handler sleeps (up
// to 100 ms a try); and a foreground writer (creates, deposits: a client waits) goes before a
// background one (the journal's applier) that is waiting. Other processes still meet SQLite's
// own lock and busy timeout. Thread-safe.
class WriteGate {
 public:
  // The one gate of `file` in this process (made on first use).
  static std::shared_ptr<WriteGate> For(const std::filesystem::path& file);

  void Acquire(bool background);
  void Release();

 private:
  std::mutex mutex_;
  std::condition_variable released_;
  bool held_ = false;
  int foreground_waiting_ = 0;
};

// A cached prepared statement borrowed for one execution. Binds are positional in call order.
// Reset and unbound when it goes out of scope, so no statement keeps a read snapshot open by
// accident. A prepare or bind error is sticky and reported by the next Step()/Run().
class Query {
 public:
  Query(Query&& other) noexcept;
  Query& operator=(Query&&) = delete;
  Query(const Query&) = delete;
  Query& operator=(const Query&) = delete;
  ~Query();

  Query& Bind(std::int64_t value);
  Query& Bind(std::string_view text);
  Query& Bind(std::optional<std::int64_t> value);  // nullopt binds NULL
  Query& BindBlob(std::span<const std::byte> bytes);

  // true: a row is available; false: done.
  Result<bool> Step();
  // Steps until done, for statements whose rows (if any) are not needed.
  Status Run();
  // Steps once and requires a row; `what` names the missing row in the error.
  Status StepRow(std::string_view what);

  std::int64_t Int(int column) const;
  std::optional<std::int64_t> OptionalInt(int column) const;
  std::string Text(int column) const;
  std::span<const std::byte> Blob(int column) const;  // valid until the next Step()

 private:
  friend class Connection;
  Query(Connection* connection, sqlite3_stmt* statement, std::optional<Error> error);

  Connection* connection_;
  sqlite3_stmt* statement_;  // owned by the connection's cache
  std::optional<Error> error_;
  int next_index_ = 1;
};

class Connection {
 public:
  // Throws std::runtime_error naming the file when it cannot be opened (a startup error).
  Connection(const std::filesystem::path& file, bool read_only);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  bool read_only() const { return read_only_; }
  // A background writer lets waiting foreground writers of this process go first.
  void set_background_writer(bool background) { background_writer_ = background; }
  // Around each write transaction (Transaction does it).
  void AcquireWriteGate() {
    if (gate_) gate_->Acquire(background_writer_);
  }
  void ReleaseWriteGate() {
    if (gate_) gate_->Release();
  }
  const std::filesystem::path& file() const { return file_; }

  // Prepares `sql` on first use and keeps it for the life of the connection.
  Query Prepare(std::string_view sql);
  // Runs one or more statements without parameters (DDL, pragmas).
  Status Execute(std::string_view sql);
  // true when no transaction is open (SQLite rolls some failed transactions back by itself).
  bool autocommit() const { return sqlite3_get_autocommit(db_) != 0; }
  std::int64_t changes() const { return sqlite3_changes64(db_); }
  // The connection's last error as an Error, its code by ErrorCodeFor.
  Error LastError(std::string_view context) const;
  // The extended result code of the last error made into an Error (0: none since the last
  // ClearLastError), for a caller that sorts errors further (a broken constraint).
  int last_error_code() const { return last_error_code_; }
  void ClearLastError() { last_error_code_ = 0; }

 private:
  struct StatementDeleter {
    void operator()(sqlite3_stmt* statement) const { sqlite3_finalize(statement); }
  };
  struct StringHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view text) const {
      return std::hash<std::string_view>{}(text);
    }
  };

  std::filesystem::path file_;
  bool read_only_;
  bool background_writer_ = false;
  mutable int last_error_code_ = 0;
  std::shared_ptr<WriteGate> gate_;  // null for a read-only connection
  sqlite3* db_ = nullptr;
  std::unordered_map<std::string, std::unique_ptr<sqlite3_stmt, StatementDeleter>, StringHash,
                     std::equal_to<>>
      statements_;
};

// Rolls back on scope exit unless Commit() succeeded. kWrite takes the write lock at BEGIN
// (BEGIN IMMEDIATE), so a check-then-write sequence inside cannot be interleaved with another
// writer and never fails half-way on a lock upgrade; kRead is a consistent snapshot.
class Transaction {
 public:
  enum class Mode { kRead, kWrite };

  static Result<Transaction> Begin(Connection& connection, Mode mode);
  Transaction(Transaction&& other) noexcept;
  Transaction& operator=(Transaction&&) = delete;
  ~Transaction();

  Status Commit();

 private:
  Transaction(Connection* connection, bool gated) : connection_(connection), gated_(gated) {}
  void Rollback();

  Connection* connection_;
  bool gated_;  // holds the connection's write gate until it ends
};

}  // namespace redpacket::ledger::sqlite
