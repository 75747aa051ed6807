// request_id idempotency: a retried deposit or packet creation (in sequence, concurrently, and
// after a restart or a crash) returns the first answer and moves money once.
#include <gtest/gtest.h>

#include <mutex>
#include <set>

#include "harness.h"

namespace redpacket::e2e {
namespace {

std::string DepositPath(std::int64_t user) {
  return "/v1/users/" + std::to_string(user) + "/deposit";
}

// Sends the same request from `threads` clients at once; every answer must equal the first.
std::vector<Reply> Concurrently(const ServerProcess& server, int threads, std::string_view target,
                                std::string_view body, std::int64_t user) {
  std::vector<Reply> replies(static_cast<std::size_t>(threads));
  RunThreads(threads, [&](int i) {
    ApiClient client(server);
    replies[static_cast<std::size_t>(i)] = client.Post(target, body, user);
  });
  return replies;
}

TEST(IdempotencyE2E, RepeatedRequestIdsApplyOnce) {
  ServerProcess server;
  server.Start();
  ApiClient api(server);
  const std::int64_t sender = api.CreateUser("sender");
  const std::int64_t other = api.CreateUser("other");

  // Deposit, then the same again: one credit, the same answer.
  const std::string first_deposit = R"({"amount_cents":5000,"request_id":"d-1"})";
  const Reply deposit = api.Post(DepositPath(sender), first_deposit);
  ASSERT_EQ(deposit.status, 200) << Describe(deposit);
  EXPECT_EQ(deposit.Int("balance_cents"), 5000);
  Reply again = api.Post(DepositPath(sender), first_deposit);
  EXPECT_EQ(again.status, 200);
  EXPECT_EQ(again.body, deposit.body);
  EXPECT_EQ(api.GetBalance(sender).total(), 5000);
  // The same request_id with another amount is another request: 409 idempotency_conflict,
  // nothing applied.
  again = api.Post(DepositPath(sender), R"({"amount_cents":7000,"request_id":"d-1"})");
  EXPECT_EQ(again.status, 409) << Describe(again);
  EXPECT_EQ(again.String("error"), "idempotency_conflict") << Describe(again);
  EXPECT_EQ(api.GetBalance(sender).total(), 5000);

  // Eight clients retrying one deposit at the same moment: one credit.
  for (const Reply& reply : Concurrently(server, 8, DepositPath(sender),
                                         R"({"amount_cents":1000,"request_id":"d-2"})", 0)) {
    EXPECT_EQ(reply.status, 200) << Describe(reply);
    EXPECT_EQ(reply.Int("balance_cents"), 6000) << reply.body;
  }
  EXPECT_EQ(api.GetBalance(sender).total(), 6000);

  // request_ids belong to a caller: another user's "d-1" is its own deposit.
  const Reply other_deposit =
      api.Post(DepositPath(other), R"({"amount_cents":300,"request_id":"d-1"})");
  ASSERT_EQ(other_deposit.status, 200) << Describe(other_deposit);
  EXPECT_EQ(api.GetBalance(other).total(), 300);

  // Create a packet, then the same again: one packet, one debit.
  const std::string first_packet =
      R"({"total_cents":1000,"count":5,"kind":"lucky","request_id":"p-1"})";
  const Reply created = api.Post("/v1/packets", first_packet, sender);
  ASSERT_EQ(created.status, 201) << Describe(created);
  const std::string packet = created.String("packet_id");
  EXPECT_EQ(packet, "1");
  again = api.Post("/v1/packets", first_packet, sender);
  EXPECT_EQ(again.status, 201) << Describe(again);
  EXPECT_EQ(again.String("packet_id"), packet);
  EXPECT_EQ(again.body, created.body);
  EXPECT_EQ(api.GetBalance(sender).total(), 5000);
  // ...and with another spec under the same request_id: 409, no second debit.
  again = api.Post("/v1/packets", R"({"total_cents":2000,"count":5,"kind":"lucky","request_id":"p-1"})",
                   sender);
  EXPECT_EQ(again.status, 409) << Describe(again);
  EXPECT_EQ(again.String("error"), "idempotency_conflict") << Describe(again);
  EXPECT_EQ(api.GetBalance(sender).total(), 5000);

  // Eight clients retrying one creation at once: one packet.
  std::set<std::string> ids;
  for (const Reply& reply :
       Concurrently(server, 8, "/v1/packets", R"({"total_cents":500,"count":5,"request_id":"p-2"})",
                    sender)) {
    ASSERT_EQ(reply.status, 201) << Describe(reply);
    ids.insert(reply.String("packet_id"));
  }
  EXPECT_EQ(ids, std::set<std::string>{"2"});
  EXPECT_EQ(api.GetBalance(sender).total(), 4500);

  // Another sender's "p-1" is its own packet.
  const Reply other_packet =
      api.Post("/v1/packets", R"({"total_cents":300,"count":3,"request_id":"p-1"})", other);
  ASSERT_EQ(other_packet.status, 201) << Describe(other_packet);
  EXPECT_EQ(other_packet.String("packet_id"), "3");
  EXPECT_EQ(api.GetBalance(other).total(), 0);

  // The memory of request_ids is durable: after a clean restart and after a crash, a retry still
  // gets the first answer and moves nothing.
  for (const bool crash : {false, true}) {
    SCOPED_TRACE(crash ? "after kill -9" : "after SIGTERM");
    if (crash) {
      server.Kill();
    } else {
      ASSERT_EQ(server.Stop(), 0);
    }
    server.Start();
    ApiClient after(server);
    const Reply deposit_again = after.Post(DepositPath(sender), first_deposit);
    EXPECT_EQ(deposit_again.status, 200);
    EXPECT_EQ(deposit_again.body, deposit.body);
    const Reply packet_again = after.Post("/v1/packets", first_packet, sender);
    EXPECT_EQ(packet_again.status, 201);
    EXPECT_EQ(packet_again.String("packet_id"), packet);
    EXPECT_EQ(after.GetBalance(sender).total(), 4500);
    EXPECT_EQ(after.GetBalance(other).total(), 0);
  }

  // No packet was created on the side: the next one is number 4.
  ApiClient after(server);
  EXPECT_EQ(after.CreatePacket(sender, R"({"total_cents":100,"count":1})"), "4");
  ASSERT_EQ(server.Stop(), 0);
  const CommandResult audit = server.Audit();
  EXPECT_EQ(audit.exit_code, 0) << audit.output;
}

}  // namespace
}  // namespace redpacket::e2e
