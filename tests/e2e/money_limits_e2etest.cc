// Bad input against the ledger's limits (docs/decisions.md §29), over HTTP: an id named by a deposit,
// even 2^53 - 1, never blocks POST /v1/users; a deposit that would take all the money in the
// system past 2^53 - 1 cents is a 400 that changes nothing, so no credit can ever pass the
// balance limit after a 200.
#include <gtest/gtest.h>

#include "domain/types.h"
#include "harness.h"
#include "ledger/sqlite/sqlite_ledger.h"

namespace redpacket::e2e {
namespace {

std::string DepositPath(std::int64_t user) {
  return "/v1/users/" + std::to_string(user) + "/deposit";
}

void ExpectAuditOk(const ServerProcess& server) {
  const CommandResult audit = server.Audit();
  EXPECT_EQ(audit.exit_code, 0) << audit.output;
  EXPECT_NE(audit.output.find("audit OK"), std::string::npos) << audit.output;
}

TEST(MoneyLimitsE2E, AnIdNamedByADepositNeverBlocksCreatingUsers) {
  ServerProcess server;
  server.Start();
  ApiClient api(server);
  const Reply far = api.Post(DepositPath(domain::kMaxUserId), R"({"amount_cents":100})");
  ASSERT_EQ(far.status, 200) << Describe(far);
  EXPECT_EQ(api.CreateUser("alice"), 1);
  EXPECT_EQ(api.CreateUser("bob"), 2);
  // An id ahead of the counter, held by an account, is skipped when the counter gets there.
  api.Deposit(3, 100);
  EXPECT_EQ(api.CreateUser("carol"), 4);
  // After a restart too: the counter is the ledger's.
  ASSERT_EQ(server.Stop(), 0);
  server.Start();
  ApiClient again(server);
  EXPECT_EQ(again.CreateUser("dave"), 5);
  EXPECT_EQ(again.GetBalance(domain::kMaxUserId).balance_cents, 100);
  ASSERT_EQ(server.Stop(), 0);
  ExpectAuditOk(server);
}

TEST(MoneyLimitsE2E, ADepositPastAllTheMoneyIsRefusedWholeAndGrabsAreCreditedInFull) {
  ServerProcess server;
  // The ledger holds almost all the money there may be (deposits are at most 10^12 cents each
  // over HTTP: it is laid down offline, as 9,000 requests would take too long).
  constexpr std::int64_t kMax = domain::kMaxTotalDepositsCents;
  std::filesystem::create_directories(server.data_dir());
  {
    auto ledger = ledger::OpenSqliteLedger(server.data_dir() / "ledger.sqlite");
    ASSERT_TRUE(ledger->Migrate().ok());
    ASSERT_TRUE(ledger->Deposit(1, kMax - 500, "").ok());
  }
  server.Start();
  ApiClient api(server);
  const std::string over = R"({"amount_cents":501,"request_id":"d-1"})";
  const Reply refused = api.Post(DepositPath(2), over);
  ASSERT_EQ(refused.status, 400) << Describe(refused);
  EXPECT_EQ(refused.Error(), "bad_request");
  EXPECT_NE(refused.String("message").find("9007199254740991"), std::string::npos)
      << Describe(refused);
  EXPECT_EQ(api.GetBalance(2).total(), 0);
  // Refused whole: the request_id is free, and what is left may still be deposited.
  const Reply fits = api.Post(DepositPath(2), R"({"amount_cents":500,"request_id":"d-1"})");
  ASSERT_EQ(fits.status, 200) << Describe(fits);
  EXPECT_EQ(fits.Int("balance_cents"), 500);
  EXPECT_EQ(api.Post(DepositPath(3), R"({"amount_cents":1})").status, 400);
  // The money moves and is credited in full: no balance can pass the bound.
  const std::string packet = api.CreatePacket(
      1, R"({"total_cents":200,"count":2,"kind":"equal","greeting":"hi","expires_in_s":3600})");
  for (std::int64_t user : {2, 4}) {
    const Reply grab = api.Post("/v1/packets/" + packet + "/grab", "", user);
    ASSERT_EQ(grab.status, 200) << Describe(grab);
  }
  EXPECT_EQ(api.GetBalance(2).total(), 600);
  EXPECT_EQ(api.GetBalance(4).total(), 100);
  EXPECT_EQ(api.GetBalance(1).total(), kMax - 500 - 200);
  ASSERT_EQ(server.Stop(), 0);
  ExpectAuditOk(server);
}

}  // namespace
}  // namespace redpacket::e2e
