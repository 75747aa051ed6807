// request_id idempotency in-process (tests/support/api_fixture.h): a retried deposit or packet
// creation, in sequence, from eight threads at once, and after a restart, is told the first
// answer and moves money once; the same request_id with another body is a 409; request_ids
// belong to their caller. That they also survive kill -9 is checked against the real binary
// (tests/e2e/idempotency_e2etest.cc).
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "tests/support/api_fixture.h"

namespace redpacket::testing_support {
namespace {

class ApiIdempotencyTest : public ApiFixture {};

TEST_F(ApiIdempotencyTest, RepeatedRequestIdsApplyOnce) {
  const std::int64_t sender = CreateUser("sender");
  const std::int64_t other = CreateUser("other");

  // Deposit, then the same again: one credit, the same answer.
  const std::string first_deposit = R"({"amount_cents":5000,"request_id":"d-1"})";
  const ApiReply deposit = Call("POST", DepositPath(sender), first_deposit);
  ASSERT_EQ(deposit.status, 200) << Describe(deposit);
  EXPECT_EQ(deposit.Int("balance_cents"), 5000);
  ApiReply again = Call("POST", DepositPath(sender), first_deposit);
  EXPECT_EQ(again.status, 200);
  EXPECT_EQ(again.body, deposit.body);
  EXPECT_EQ(Balance(sender), 5000);
  // The same request_id with another amount is another request: 409 idempotency_conflict,
  // nothing applied.
  again = Call("POST", DepositPath(sender), R"({"amount_cents":7000,"request_id":"d-1"})");
  EXPECT_EQ(again.status, 409) << Describe(again);
  EXPECT_EQ(again.Error(), "idempotency_conflict") << Describe(again);
  EXPECT_EQ(Balance(sender), 5000);

  // Eight callers retrying one deposit at the same moment: one credit.
  for (const ApiReply& reply : CallConcurrently(8, "POST", DepositPath(sender),
                                                R"({"amount_cents":1000,"request_id":"d-2"})", 0)) {
    EXPECT_EQ(reply.status, 200) << Describe(reply);
    EXPECT_EQ(reply.Int("balance_cents"), 6000) << reply.body;
  }
  EXPECT_EQ(Balance(sender), 6000);

  // request_ids belong to a caller: another user's "d-1" is its own deposit.
  const ApiReply other_deposit =
      Call("POST", DepositPath(other), R"({"amount_cents":300,"request_id":"d-1"})");
  ASSERT_EQ(other_deposit.status, 200) << Describe(other_deposit);
  EXPECT_EQ(Balance(other), 300);

  // Create a packet, then the same again: one packet, one debit.
  const std::string first_packet =
      R"({"total_cents":1000,"count":5,"kind":"lucky","request_id":"p-1"})";
  const ApiReply created = Call("POST", "/v1/packets", first_packet, sender);
  ASSERT_EQ(created.status, 201) << Describe(created);
  const std::string packet = created.String("packet_id");
  EXPECT_EQ(packet, "1");
  again = Call("POST", "/v1/packets", first_packet, sender);
  EXPECT_EQ(again.status, 201) << Describe(again);
  EXPECT_EQ(again.String("packet_id"), packet);
  EXPECT_EQ(again.body, created.body);
  EXPECT_EQ(Balance(sender), 5000);
  // ...and with another spec under the same request_id: 409, no second debit.
  again = Call("POST", "/v1/packets",
               R"({"total_cents":2000,"count":5,"kind":"lucky","request_id":"p-1"})", sender);
  EXPECT_EQ(again.status, 409) << Describe(again);
  EXPECT_EQ(again.Error(), "idempotency_conflict") << Describe(again);
  EXPECT_EQ(Balance(sender), 5000);

  // Eight callers retrying one creation at once: one packet.
  std::set<std::string> ids;
  for (const ApiReply& reply :
       CallConcurrently(8, "POST", "/v1/packets",
                        R"({"total_cents":500,"count":5,"request_id":"p-2"})", sender)) {
    ASSERT_EQ(reply.status, 201) << Describe(reply);
    ids.insert(reply.String("packet_id"));
  }
  EXPECT_EQ(ids, std::set<std::string>{"2"});
  EXPECT_EQ(Balance(sender), 4500);

  // Another sender's "p-1" is its own packet.
  const ApiReply other_packet =
      Call("POST", "/v1/packets", R"({"total_cents":300,"count":3,"request_id":"p-1"})", other);
  ASSERT_EQ(other_packet.status, 201) << Describe(other_packet);
  EXPECT_EQ(other_packet.String("packet_id"), "3");
  EXPECT_EQ(Balance(other), 0);

  // The memory of request_ids is durable: after a restart (as after SIGTERM), a retry still gets
  // the first answer and moves nothing.
  Restart();
  const ApiReply deposit_again = Call("POST", DepositPath(sender), first_deposit);
  EXPECT_EQ(deposit_again.status, 200);
  EXPECT_EQ(deposit_again.body, deposit.body);
  const ApiReply packet_again = Call("POST", "/v1/packets", first_packet, sender);
  EXPECT_EQ(packet_again.status, 201);
  EXPECT_EQ(packet_again.String("packet_id"), packet);
  EXPECT_EQ(Balance(sender), 4500);
  EXPECT_EQ(Balance(other), 0);

  // No packet was created on the side: the next one is number 4.
  EXPECT_EQ(CreatePacket(sender, R"({"total_cents":100,"count":1})"), "4");
  ExpectAuditOk();
}

}  // namespace
}  // namespace redpacket::testing_support
