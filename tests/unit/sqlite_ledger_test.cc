// The SQLite ledger: the Ledger conformance suite (tests/ledger) on a temporary file per case,
// plus what only a file-backed ledger has (opening errors, the read-only mode for audit).
#include "ledger/sqlite/sqlite_ledger.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <stdlib.h>

#include <filesystem>
#include <stdexcept>
#include <string>

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

}  // namespace
}  // namespace redpacket::ledger::testing
