// request_id idempotency across a crash: a deposit and a packet creation retried after kill -9
// return the first answer and move money once. The rest (retries in sequence, from eight threads
// at once, after a clean restart; conflicts; request_ids per caller) is in-process:
// tests/unit/api_idempotency_test.cc.
#include <gtest/gtest.h>

#include "harness.h"

namespace redpacket::e2e {
namespace {

std::string DepositPath(std::int64_t user) {
  return "/v1/users/" + std::to_string(user) + "/deposit";
}

// A retried deposit and packet creation after kill -9: the request_ids survive the crash (the
// journal and ledger as left on disk), so the retry gets the first answer and moves nothing.
TEST(IdempotencyE2E, RequestIdsAreRememberedAfterAKillNine) {
  ServerProcess server;
  server.Start();
  ApiClient api(server);
  const std::int64_t sender = api.CreateUser("sender");
  const std::string first_deposit = R"({"amount_cents":5000,"request_id":"d-1"})";
  const Reply deposit = api.Post(DepositPath(sender), first_deposit);
  ASSERT_EQ(deposit.status, 200) << Describe(deposit);
  const std::string first_packet =
      R"({"total_cents":1000,"count":5,"kind":"lucky","request_id":"p-1"})";
  const Reply created = api.Post("/v1/packets", first_packet, sender);
  ASSERT_EQ(created.status, 201) << Describe(created);
  const std::string packet = created.String("packet_id");
  EXPECT_EQ(packet, "1");

  server.Kill();
  server.Start();
  ApiClient after(server);
  const Reply deposit_again = after.Post(DepositPath(sender), first_deposit);
  EXPECT_EQ(deposit_again.status, 200);
  EXPECT_EQ(deposit_again.body, deposit.body);
  const Reply packet_again = after.Post("/v1/packets", first_packet, sender);
  EXPECT_EQ(packet_again.status, 201);
  EXPECT_EQ(packet_again.String("packet_id"), packet);
  EXPECT_EQ(after.GetBalance(sender).total(), 4000);

  // No packet was created on the side: the next one is number 2.
  EXPECT_EQ(after.CreatePacket(sender, R"({"total_cents":100,"count":1})"), "2");
  ASSERT_EQ(server.Stop(), 0);
  const CommandResult audit = server.Audit();
  EXPECT_EQ(audit.exit_code, 0) << audit.output;
}

}  // namespace
}  // namespace redpacket::e2e
