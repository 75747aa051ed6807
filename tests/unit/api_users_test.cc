// The users' API in-process (tests/support/api_fixture.h): bad deposits, ids that tokens or
// deposits name, balances and history. A deposit's request_id, retried in sequence and from
// threads at once: api_idempotency_test.cc.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/support/api_fixture.h"

namespace redpacket::testing_support {
namespace {

class ApiUsersTest : public ApiFixture {};

TEST_F(ApiUsersTest, BadDepositsAreRefusedAndChangeNothing) {
  const std::int64_t user = CreateFundedUser("alice", 1000);
  const char* bodies[] = {
      R"({"amount_cents":0,"request_id":"d-0"})",
      R"({"amount_cents":-5,"request_id":"d-0"})",
      R"({"amount_cents":10.5,"request_id":"d-0"})",
      R"({"amount_cents":"100","request_id":"d-0"})",
      R"({"amount_cents":100,"request_id":""})",
      R"({"amount_cents":100,"request_id":"this-request-id-is-far-longer-than-the-64-characters-allowed-by-the-api"})",
      R"({"amount_cents":100)",
  };
  for (const char* body : bodies) {
    SCOPED_TRACE(body);
    const ApiReply reply = Call("POST", DepositPath(user), body);
    EXPECT_EQ(reply.status, 400) << Describe(reply);
    EXPECT_EQ(reply.Error(), "bad_request") << Describe(reply);
    EXPECT_EQ(Balance(user), 1000);
  }
}

// An id that a deposit names explicitly, even the largest of the contract, never blocks the ids
// that POST /v1/users assigns (docs/API.md: the two ranges never collide).
TEST_F(ApiUsersTest, ADepositToTheLargestIdLeavesNewUsersTheirOwnIds) {
  const std::int64_t first = CreateUser("first");
  const std::int64_t largest = 9007199254740991;  // 2^53 - 1
  const ApiReply deposit =
      Call("POST", DepositPath(largest), R"({"amount_cents":100,"request_id":"d-big"})");
  ASSERT_EQ(deposit.status, 200) << Describe(deposit);
  const std::int64_t next = CreateUser("next");
  EXPECT_GT(next, first);
  EXPECT_NE(next, largest);
  EXPECT_EQ(Balance(largest), 100);
  EXPECT_EQ(Balance(next), 0);
}

TEST_F(ApiUsersTest, HistoryListsWhatWasSentAndReceived) {
  const std::int64_t sender = CreateFundedUser("sender", 1000);
  const std::string packet = CreatePacket(sender, R"({"total_cents":300,"count":3})");
  const ApiReply grab = Call("POST", "/v1/packets/" + packet + "/grab", "", 42);
  ASSERT_EQ(grab.status, 200) << Describe(grab);

  const ApiReply sent =
      Call("GET", "/v1/users/" + std::to_string(sender) + "/history?kind=sent", "", sender);
  ASSERT_EQ(sent.status, 200) << Describe(sent);
  EXPECT_NE(sent.body.find("\"packet_id\":\"" + packet + "\""), std::string::npos) << sent.body;
  const ApiReply bad =
      Call("GET", "/v1/users/" + std::to_string(sender) + "/history?kind=stolen", "", sender);
  EXPECT_EQ(bad.status, 400) << Describe(bad);
  // Another user's history is not the caller's to read.
  const ApiReply foreign =
      Call("GET", "/v1/users/" + std::to_string(sender) + "/history?kind=sent", "", 42);
  EXPECT_EQ(foreign.status, 403) << Describe(foreign);
}

}  // namespace
}  // namespace redpacket::testing_support
