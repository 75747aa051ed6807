// The SQLite ledger: the Ledger conformance suite (tests/ledger) on a temporary file per case,
// plus what only a file-backed ledger has (opening errors, the read-only mode for audit).
#include "ledger/sqlite/sqlite_ledger.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include "domain/clock.h"
#include "ledger/sqlite/sqlite_connection.h"
#include "tests/ledger/ledger_conformance.h"

namespace redpacket::ledger::testing {
namespace {

namespace fs = std::filesystem;

// Each case gets its own temporary directory holding ledger.sqlite.
class SqliteBackend final : public LedgerBackend {
 public:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "rp-ledger-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    directory_ = pattern;
  }
  void TearDown() override { fs::remove_all(directory_); }
  std::unique_ptr<Ledger> Open() override { return OpenSqliteLedger(file()); }
  void ExecuteBehindTheLedger(const std::string& sql) override {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(file().c_str(), &db), SQLITE_OK);
    EXPECT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK) << sql;
    sqlite3_close(db);
  }

  fs::path directory() const { return directory_; }
  fs::path file() const { return directory_ / "ledger.sqlite"; }

 private:
  fs::path directory_;
};

INSTANTIATE_TEST_SUITE_P(Sqlite, LedgerConformance,
                         ::testing::Values(LedgerBackendParam{
                             "sqlite", [] { return std::make_unique<SqliteBackend>(); }}),
                         BackendName);

// What only the SQLite ledger has.
class SqliteLedgerTest : public ::testing::Test, protected LedgerFixture {
 protected:
  void SetUp() override {
    auto backend = std::make_unique<SqliteBackend>();
    sqlite_ = backend.get();
    StartCase(std::move(backend));
  }
  void TearDown() override { EndCase(); }

  SqliteBackend* sqlite_ = nullptr;
};

TEST_F(SqliteLedgerTest, OpeningAnUnreachableFileThrows) {
  EXPECT_THROW(OpenSqliteLedger(sqlite_->directory() / "missing" / "ledger.sqlite"),
               std::runtime_error);
  EXPECT_THROW(OpenSqliteLedger(sqlite_->directory() / "absent.sqlite", /*read_only=*/true),
               std::runtime_error);
}

TEST_F(SqliteLedgerTest, ReadOnlyLedgerReadsAndRefusesWrites) {
  CreatePacket(1, {10, 20});
  auto reader = OpenSqliteLedger(sqlite_->file(), /*read_only=*/true);
  EXPECT_TRUE(reader->Migrate().ok());
  EXPECT_EQ(*reader->Balance(1), 0);
  EXPECT_TRUE(reader->GetPacket(1)->has_value());
  EXPECT_FALSE(reader->Deposit(1, 5, "").ok());
}

// A deposit records the time of the clock the ledger was handed, not the system's.
TEST_F(SqliteLedgerTest, ADepositRecordsTheInjectedClocksTime) {
  domain::ManualTimeSource clock(domain::FromUnixMillis(1'900'000'000'000));  // 2030
  auto ledger = OpenSqliteLedger(sqlite_->file(), false, {}, false, clock);
  ASSERT_TRUE(ledger->Migrate().ok());
  ASSERT_TRUE(ledger->Deposit(1, 5, "").ok());
  clock.Advance(std::chrono::milliseconds(1234));
  ASSERT_TRUE(ledger->Deposit(1, 6, "").ok());
  sqlite::Connection connection(sqlite_->file(), /*read_only=*/true);
  auto query = connection.Prepare("SELECT created_at_ms FROM deposits ORDER BY rowid");
  std::vector<std::int64_t> times;
  while (true) {
    auto row = query.Step();
    ASSERT_TRUE(row.ok());
    if (!*row) break;
    times.push_back(query.Int(0));
  }
  EXPECT_EQ(times, (std::vector<std::int64_t>{1'900'000'000'000, 1'900'000'001'234}));
}

TEST(SqliteErrorsTest, WhatTheMachineCausesIsRetryableWhatTheDataCausesIsNot) {
  using domain::ErrorCode;
  for (int code : {SQLITE_BUSY, SQLITE_LOCKED, SQLITE_FULL, SQLITE_IOERR, SQLITE_IOERR_WRITE,
                   SQLITE_IOERR_FSYNC, SQLITE_READONLY, SQLITE_READONLY_DBMOVED, SQLITE_CANTOPEN,
                   SQLITE_NOMEM, SQLITE_PROTOCOL, SQLITE_BUSY_SNAPSHOT, SQLITE_ABORT_ROLLBACK}) {
    EXPECT_EQ(sqlite::ErrorCodeFor(code), ErrorCode::kUnavailable) << sqlite3_errstr(code);
  }
  for (int code : {SQLITE_CONSTRAINT, SQLITE_CONSTRAINT_UNIQUE, SQLITE_CONSTRAINT_CHECK,
                   SQLITE_CORRUPT, SQLITE_NOTADB, SQLITE_MISUSE, SQLITE_MISMATCH, SQLITE_ERROR}) {
    EXPECT_EQ(sqlite::ErrorCodeFor(code), ErrorCode::kInternal) << sqlite3_errstr(code);
  }
}

// A disk that refuses every write (here a file-size limit of 0: each write fails as on a full
// disk): every write of the ledger is kUnavailable (creates and deposits answer 503, the
// applier retries), nothing is half-written, and the same connection writes again afterwards.
// In a child process, which alone takes the limit.
TEST_F(SqliteLedgerTest, ADiskThatRefusesWritesIsUnavailableAndChangesNothing) {
  const PacketRecord packet = CreatePacket(1, {10, 20});
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::signal(SIGXFSZ, SIG_IGN);  // the write fails with EFBIG instead of killing the process
    auto ledger = OpenSqliteLedger(sqlite_->file());
    const rlimit none{0, RLIM_INFINITY};
    const rlimit any{RLIM_INFINITY, RLIM_INFINITY};
    if (::setrlimit(RLIMIT_FSIZE, &none) != 0) _exit(10);
    auto unavailable = [](const domain::Error& error) {
      return error.code == domain::ErrorCode::kUnavailable;
    };
    Status applied = ledger->ApplyEvents(std::vector{GrabEvent(packet.packet_id, 7, 10, 1)}, At(1));
    if (applied.ok() || !unavailable(applied.error())) _exit(11);
    auto deposit = ledger->Deposit(8, 5, "");
    if (deposit.ok() || !unavailable(deposit.error())) _exit(12);
    auto user = ledger->CreateUser("zoe");
    if (user.ok() || !unavailable(user.error())) _exit(13);
    const SetAsideRecord record{.partition = 0, .offset = 1, .event_id = "", .payload = "x",
                                .reason = "test", .at = {}};
    Status kept = ledger->SetAside(record, At(1));
    if (kept.ok() || !unavailable(kept.error())) _exit(14);
    if (::setrlimit(RLIMIT_FSIZE, &any) != 0) _exit(15);
    if (!ledger->ApplyEvents(std::vector{GrabEvent(packet.packet_id, 7, 10, 1)}, At(1)).ok()) {
      _exit(16);
    }
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 0);
  ledger_ = Open();
  EXPECT_EQ(BalanceOf(7), 10);  // applied once, after the disk took writes again
  EXPECT_EQ(BalanceOf(8), 0);
  EXPECT_EQ(AppliedPosition(), 1u);
  ExpectConsistentAudit();
}

}  // namespace
}  // namespace redpacket::ledger::testing
