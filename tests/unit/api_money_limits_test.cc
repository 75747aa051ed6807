// Bad input against the ledger's limits (docs/decisions.md §29), in-process
// (tests/support/api_fixture.h): an id named by a deposit, even 2^53 - 1, never blocks
// POST /v1/users, also after a restart; a deposit that would take all the money in the system past
// 2^53 - 1 cents is a 400 that changes nothing, so no credit can ever pass the balance limit after
// a 200. Each test ends with a clean audit of the data dir.
#include <gtest/gtest.h>

#include <string>

#include "domain/types.h"
#include "ledger/sqlite/sqlite_ledger.h"
#include "tests/support/api_fixture.h"

namespace redpacket::testing_support {
namespace {

class ApiMoneyLimitsTest : public ApiFixture {};

TEST_F(ApiMoneyLimitsTest, AnIdNamedByADepositNeverBlocksCreatingUsers) {
  const ApiReply far = Call("POST", DepositPath(domain::kMaxUserId), R"({"amount_cents":100})");
  ASSERT_EQ(far.status, 200) << Describe(far);
  EXPECT_EQ(CreateUser("alice"), 1);
  EXPECT_EQ(CreateUser("bob"), 2);
  // An id ahead of the counter, held by an account, is skipped when the counter gets there.
  const ApiReply ahead = Call("POST", DepositPath(3), R"({"amount_cents":100})");
  ASSERT_EQ(ahead.status, 200) << Describe(ahead);
  EXPECT_EQ(CreateUser("carol"), 4);
  // After a restart too: the counter is the ledger's.
  Restart();
  EXPECT_EQ(CreateUser("dave"), 5);
  const ApiReply balance =
      Call("GET", "/v1/users/" + std::to_string(domain::kMaxUserId) + "/balance", "",
           domain::kMaxUserId);
  ASSERT_EQ(balance.status, 200) << Describe(balance);
  EXPECT_EQ(balance.Int("balance_cents"), 100);
  ExpectAuditOk();
}

TEST_F(ApiMoneyLimitsTest, ADepositPastAllTheMoneyIsRefusedWholeAndGrabsAreCreditedInFull) {
  // The ledger holds almost all the money there may be (deposits are at most 10^12 cents each
  // over the API: it is laid down directly, as 9,000 requests would take too long).
  constexpr std::int64_t kMax = domain::kMaxTotalDepositsCents;
  Stop();
  {
    auto ledger = ledger::OpenSqliteLedger(data_dir() / "ledger.sqlite");
    ASSERT_TRUE(ledger->Migrate().ok());
    ASSERT_TRUE(ledger->Deposit(1, kMax - 500, "").ok());
  }
  Start();
  const std::string over = R"({"amount_cents":501,"request_id":"d-1"})";
  const ApiReply refused = Call("POST", DepositPath(2), over);
  ASSERT_EQ(refused.status, 400) << Describe(refused);
  EXPECT_EQ(refused.Error(), "bad_request");
  EXPECT_NE(refused.String("message").find("9007199254740991"), std::string::npos)
      << Describe(refused);
  EXPECT_EQ(Balance(2), 0);
  // Refused whole: the request_id is free, and what is left may still be deposited.
  const ApiReply fits = Call("POST", DepositPath(2), R"({"amount_cents":500,"request_id":"d-1"})");
  ASSERT_EQ(fits.status, 200) << Describe(fits);
  EXPECT_EQ(fits.Int("balance_cents"), 500);
  EXPECT_EQ(Call("POST", DepositPath(3), R"({"amount_cents":1})").status, 400);
  // The money moves and is credited in full: no balance can pass the bound.
  const std::string packet = CreatePacket(
      1, R"({"total_cents":200,"count":2,"kind":"equal","greeting":"hi","expires_in_s":3600})");
  for (std::int64_t user : {2, 4}) {
    const ApiReply grab = Call("POST", "/v1/packets/" + packet + "/grab", "", user);
    ASSERT_EQ(grab.status, 200) << Describe(grab);
  }
  EXPECT_EQ(Balance(2), 600);
  EXPECT_EQ(Balance(4), 100);
  EXPECT_EQ(Balance(1), kMax - 500 - 200);
  ExpectAuditOk();
}

}  // namespace
}  // namespace redpacket::testing_support
