// The users' API in-process (tests/support/api_fixture.h): deposits and their request ids, ids
// that tokens or deposits name, balances and history. Concurrent retries run on threads of their
// own, so these cases also run under ThreadSanitizer.
#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "tests/support/api_fixture.h"

namespace redpacket::testing_support {
namespace {

class ApiUsersTest : public ApiFixture {
 protected:
  static std::string DepositPath(std::int64_t user) {
    return "/v1/users/" + std::to_string(user) + "/deposit";
  }
  // `threads` callers sending the same request at once; their replies.
  std::vector<ApiReply> Concurrently(int threads, const std::string& target,
                                     const std::string& body, std::int64_t user) {
    std::vector<ApiReply> replies(threads);
    std::vector<std::thread> callers;
    for (int i = 0; i < threads; ++i) {
      callers.emplace_back([&, i] { replies[i] = Call("POST", target, body, user); });
    }
    for (auto& caller : callers) caller.join();
    return replies;
  }
};

TEST_F(ApiUsersTest, ARepeatedDepositIsToldItsFirstAnswerAndCreditsOnce) {
  const std::int64_t user = CreateUser("alice");
  const std::string body = R"({"amount_cents":5000,"request_id":"d-1"})";
  const ApiReply first = Call("POST", DepositPath(user), body);
  ASSERT_EQ(first.status, 200) << Describe(first);
  EXPECT_EQ(first.Int("balance_cents"), 5000);
  const ApiReply again = Call("POST", DepositPath(user), body);
  EXPECT_EQ(again.status, 200) << Describe(again);
  EXPECT_EQ(again.body, first.body);
  // The same request id with another amount is another request: refused, nothing moves.
  const ApiReply other =
      Call("POST", DepositPath(user), R"({"amount_cents":7000,"request_id":"d-1"})");
  EXPECT_EQ(other.status, 409) << Describe(other);
  EXPECT_EQ(other.Error(), "idempotency_conflict");
  EXPECT_EQ(Balance(user), 5000);

  // Eight callers retrying one deposit at the same moment: one credit, one answer.
  for (const ApiReply& reply :
       Concurrently(8, DepositPath(user), R"({"amount_cents":1000,"request_id":"d-2"})", 0)) {
    EXPECT_EQ(reply.status, 200) << Describe(reply);
    EXPECT_EQ(reply.Int("balance_cents"), 6000) << reply.body;
  }
  EXPECT_EQ(Balance(user), 6000);

  // Request ids belong to their account: another user's "d-1" is a deposit of its own.
  const std::int64_t bob = CreateUser("bob");
  EXPECT_EQ(Call("POST", DepositPath(bob), R"({"amount_cents":300,"request_id":"d-1"})").status,
            200);
  EXPECT_EQ(Balance(bob), 300);
  EXPECT_EQ(Balance(user), 6000);
}

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
