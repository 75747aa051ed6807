// One Ledger conformance suite for every ledger implementation: each backend (SQLite in
// tests/unit, MariaDB in tests/mariadb) provides a LedgerBackend that gives every case an empty
// store, and instantiates the suite with INSTANTIATE_TEST_SUITE_P. The cases are in
// ledger_conformance.cc; LedgerFixture's helpers are shared with backend-specific tests.
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "ledger/ledger.h"

namespace redpacket::ledger::testing {

// One kind of ledger under test. Not thread-safe.
class LedgerBackend {
 public:
  virtual ~LedgerBackend() = default;
  // Prepares an empty store of its own for one test case (a temporary file, a new database).
  virtual void SetUp() = 0;
  // Removes what SetUp created.
  virtual void TearDown() = 0;
  // A new connection to the case's store (as after a restart: nothing cached).
  virtual std::unique_ptr<Ledger> Open() = 0;
  // Runs one SQL statement on the store behind the ledger's back (to tamper with it).
  virtual void ExecuteBehindTheLedger(const std::string& sql) = 0;
};

struct LedgerBackendParam {
  std::string name;  // the suffix of the test names
  std::function<std::unique_ptr<LedgerBackend>()> make;
};
inline void PrintTo(const LedgerBackendParam& param, std::ostream* out) { *out << param.name; }
inline std::string BackendName(const ::testing::TestParamInfo<LedgerBackendParam>& info) {
  return info.param.name;
}

// The names every case uses.
using domain::ErrorCode;
using domain::LedgerEvent;
using domain::PacketKind;
using domain::PacketSpec;
using domain::PacketStatus;

inline constexpr std::int64_t kCreatedAtMillis = 1'700'000'000'000;

domain::LedgerEvent GrabEvent(PacketId packet_id, UserId user_id, Cents amount, std::int64_t seq);
domain::LedgerEvent RefundEvent(PacketId packet_id, UserId sender_id, Cents amount);
// The journal's offsets: one partition, 0.
domain::PartitionOffsets At(std::uint64_t position);
// A lucky packet of these shares from this sender, with a greeting, expiring in a day.
domain::PacketSpec Spec(UserId sender_id, const std::vector<Cents>& shares);

// The state and helpers of one case: a backend, and a migrated ledger on its store.
class LedgerFixture {
 protected:
  void StartCase(std::unique_ptr<LedgerBackend> backend);
  void EndCase();

  std::unique_ptr<Ledger> Open() { return backend_->Open(); }
  std::uint64_t AppliedPosition();
  // Ledger::CreatePacket of a packet created at kCreatedAtMillis, expiring a day later.
  Result<PacketRecord> TryCreatePacket(const domain::PacketSpec& spec,
                                       const std::vector<Cents>& shares,
                                       std::string_view request_id = "");
  // Deposits the total and creates a packet with these shares; fails the test on error.
  PacketRecord CreatePacket(UserId sender_id, const std::vector<Cents>& shares,
                            std::string_view request_id = "");
  Cents BalanceOf(UserId user_id);
  PacketRecord PacketOf(PacketId packet_id);
  // deposits == balances + escrow, and no account mismatch.
  void ExpectConsistentAudit();

  std::unique_ptr<LedgerBackend> backend_;
  std::unique_ptr<Ledger> ledger_;
};

class LedgerConformance : public ::testing::TestWithParam<LedgerBackendParam>,
                          protected LedgerFixture {
 protected:
  void SetUp() override { StartCase(GetParam().make()); }
  void TearDown() override { EndCase(); }
};

}  // namespace redpacket::ledger::testing
