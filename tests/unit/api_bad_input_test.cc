// Bad requests in-process (tests/support/api_fixture.h), a table against a --dev API: each is
// answered with its 4xx, a JSON error code and a message, and changes nothing (balances stay, no
// packet is created: the next packet's id continues the sequence). What the transport answers
// before http::Api sees a request (a body over 64 KiB, oversized headers) is checked against the
// real binary in tests/e2e/bad_input_e2etest.cc; the token server's table is api_access_test.cc.
#include <gtest/gtest.h>

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "tests/support/api_fixture.h"
#include "tests/support/bad_requests.h"

namespace redpacket::testing_support {
namespace {

std::map<std::string, std::string> As(std::int64_t user) {
  return {{"X-User-Id", std::to_string(user)}};
}

std::string PacketBody(std::string_view fields) { return "{" + std::string(fields) + "}"; }

std::string Repeat(std::string_view text, int times) {
  std::string out;
  for (int i = 0; i < times; ++i) out += text;
  return out;
}

class ApiBadInputTest : public ApiFixture {
 protected:
  // Runs every case, then `unchanged` after each.
  void RunTable(const std::vector<BadCase>& cases, const std::function<void()>& unchanged) {
    for (const BadCase& bad : cases) {
      SCOPED_TRACE(bad.name);
      ExpectRefused(bad, Call(bad.method, bad.target, bad.body, 0, bad.headers));
      unchanged();
    }
  }
};

TEST_F(ApiBadInputTest, DevServerRejectsBadRequestsAndChangesNothing) {
  // The fixture's limits are serve's defaults: max_count 100, max_total_cents 20000, expiry
  // 60..86400 s.
  const std::int64_t sender = CreateFundedUser("sender", 50000);
  const std::int64_t other = CreateFundedUser("other", 100);
  const std::int64_t receiver = CreateUser("receiver");
  const std::string exclusive = CreatePacket(
      sender, R"({"total_cents":100,"count":1,"receiver_id":)" + std::to_string(receiver) + "}");
  ASSERT_EQ(exclusive, "1");
  const std::int64_t sender_balance = Balance(sender);

  const std::string create = "/v1/packets";
  const std::string deposit = "/v1/users/" + std::to_string(sender) + "/deposit";
  const std::string sender_balance_path = "/v1/users/" + std::to_string(sender) + "/balance";
  const std::string sender_history = "/v1/users/" + std::to_string(sender) + "/history";
  auto packet = [&](std::string name, std::string_view fields, int status = 400,
                    std::string error = "bad_request") {
    return Bad(std::move(name), "POST", create, PacketBody(fields), As(sender), status,
               std::move(error));
  };
  auto deposit_case = [&](std::string name, std::string body, const std::string& target = {}) {
    return Bad(std::move(name), "POST", target.empty() ? deposit : target, std::move(body), {}, 400,
               "bad_request");
  };
  const std::string receiver_field = R"("receiver_id":)" + std::to_string(receiver);

  const std::vector<BadCase> cases = {
      // Not JSON, or not an object.
      Bad("malformed JSON", "POST", create, R"({"total_cents":100,"count":1)", As(sender), 400,
          "bad_request"),
      Bad("not JSON at all", "POST", create, "hello", As(sender), 400, "bad_request"),
      Bad("empty body", "POST", create, "", As(sender), 400, "bad_request"),
      Bad("trailing garbage", "POST", create, R"({"total_cents":100,"count":1} x)", As(sender), 400,
          "bad_request"),
      Bad("JSON array body", "POST", create, R"([{"total_cents":100,"count":1}])", As(sender), 400,
          "bad_request"),
      Bad("JSON string body", "POST", create, R"("total_cents")", As(sender), 400, "bad_request"),
      Bad("JSON null body", "POST", create, "null", As(sender), 400, "bad_request"),
      // Wrong types.
      packet("string total_cents", R"("total_cents":"100","count":1)"),
      packet("float count", R"("total_cents":100,"count":1.5)"),
      packet("integral float count", R"("total_cents":100,"count":2.0)"),
      packet("exponent total_cents", R"("total_cents":1e2,"count":1)"),
      packet("bool count", R"("total_cents":100,"count":true)"),
      packet("object count", R"("total_cents":100,"count":{})"),
      packet("null total_cents", R"("total_cents":null,"count":1)"),
      packet("missing count", R"("total_cents":100)"),
      packet("kind not a string", R"("total_cents":100,"count":1,"kind":1)"),
      packet("unknown kind", R"("total_cents":100,"count":1,"kind":"mega")"),
      packet("greeting not a string", R"("total_cents":100,"count":1,"greeting":5)"),
      packet("expires_in_s as a string", R"("total_cents":100,"count":1,"expires_in_s":"60")"),
      packet("receiver_id as a string", R"("total_cents":100,"count":1,"receiver_id":"3")"),
      packet("request_id not a string", R"("total_cents":100,"count":1,"request_id":5)"),
      // Negative, zero, overflowing.
      packet("negative total_cents", R"("total_cents":-100,"count":1)"),
      packet("zero total_cents", R"("total_cents":0,"count":1)"),
      packet("zero count", R"("total_cents":100,"count":0)"),
      packet("negative count", R"("total_cents":100,"count":-1)"),
      packet("overflowing total_cents", R"("total_cents":99999999999999999999,"count":1)"),
      packet("overflowing count", R"("total_cents":100,"count":99999999999999999999)"),
      packet("int64 max total_cents", R"("total_cents":9223372036854775807,"count":1)"),
      packet("uint64 max total_cents", R"("total_cents":18446744073709551615,"count":1)"),
      packet("int64 min count", R"("total_cents":100,"count":-9223372036854775808)"),
      packet("below int64 min count", R"("total_cents":100,"count":-9223372036854775809)"),
      packet("negative expires_in_s", R"("total_cents":100,"count":1,"expires_in_s":-60)"),
      packet("receiver_id zero", R"("total_cents":100,"count":1,"receiver_id":0)"),
      packet("receiver_id 2^53", R"("total_cents":100,"count":1,"receiver_id":9007199254740992)"),
      // Limits and rules.
      packet("count over max_count", R"("total_cents":20000,"count":101)"),
      packet("total over max_total_cents", R"("total_cents":20001,"count":1)"),
      packet("count over total (a share under 1 cent)", R"("total_cents":5,"count":10)"),
      packet("equal packet not divisible", R"("total_cents":100,"count":3,"kind":"equal")"),
      packet("exclusive packet with count 2", R"("total_cents":100,"count":2,)" + receiver_field),
      packet("expires_in_s 10", R"("total_cents":100,"count":1,"expires_in_s":10)"),
      packet("expires_in_s 59", R"("total_cents":100,"count":1,"expires_in_s":59)"),
      packet("expires_in_s 86401", R"("total_cents":100,"count":1,"expires_in_s":86401)"),
      packet("expires_in_s 100000", R"("total_cents":100,"count":1,"expires_in_s":100000)"),
      packet("greeting of 257 bytes",
             R"("total_cents":100,"count":1,"greeting":")" + std::string(257, 'g') + "\""),
      packet("greeting of 86 CJK characters (258 bytes)",
             R"("total_cents":100,"count":1,"greeting":")" + Repeat("福", 86) + "\""),
      packet("request_id of 65 chars",
             R"("total_cents":100,"count":1,"request_id":")" + std::string(65, 'r') + "\""),
      packet("empty request_id", R"("total_cents":100,"count":1,"request_id":"")"),
      // Callers and money.
      Bad("no caller", "POST", create, R"({"total_cents":100,"count":1})", {}, 401,
          "unauthenticated"),
      Bad("X-User-Id not a number", "POST", create, R"({"total_cents":100,"count":1})",
          {{"X-User-Id", "alice"}}, 401, "unauthenticated"),
      Bad("X-User-Id zero", "POST", create, R"({"total_cents":100,"count":1})",
          {{"X-User-Id", "0"}}, 401, "unauthenticated"),
      Bad("X-User-Id 2^53", "POST", create, R"({"total_cents":100,"count":1})",
          {{"X-User-Id", "9007199254740992"}}, 401, "unauthenticated"),
      Bad("insufficient funds", "POST", create, R"({"total_cents":1000,"count":1})", As(other), 402,
          "insufficient_funds"),
      Bad("insufficient funds by one cent", "POST", create, R"({"total_cents":101,"count":1})",
          As(other), 402, "insufficient_funds"),
      // Deposits and users (admin endpoints, open in --dev).
      deposit_case("deposit negative", R"({"amount_cents":-1})"),
      deposit_case("deposit zero", R"({"amount_cents":0})"),
      deposit_case("deposit as a string", R"({"amount_cents":"100"})"),
      deposit_case("deposit float", R"({"amount_cents":100.5})"),
      deposit_case("deposit overflowing", R"({"amount_cents":99999999999999999999})"),
      deposit_case("deposit over the sanity cap", R"({"amount_cents":1000000000001})"),
      deposit_case("deposit without amount", R"({"request_id":"x"})"),
      deposit_case("deposit with a 65-char request_id",
                   R"({"amount_cents":1,"request_id":")" + std::string(65, 'r') + "\"}"),
      deposit_case("deposit as an array", R"([{"amount_cents":1}])"),
      deposit_case("deposit to user 0", R"({"amount_cents":1})", "/v1/users/0/deposit"),
      deposit_case("deposit to user abc", R"({"amount_cents":1})", "/v1/users/abc/deposit"),
      deposit_case("deposit to user 2^53", R"({"amount_cents":1})",
                   "/v1/users/9007199254740992/deposit"),
      Bad("user without a name", "POST", "/v1/users", R"({})", {}, 400, "bad_request"),
      Bad("user with an empty name", "POST", "/v1/users", R"({"name":""})", {}, 400, "bad_request"),
      Bad("user with a numeric name", "POST", "/v1/users", R"({"name":5})", {}, 400, "bad_request"),
      Bad("user with a 65-byte name", "POST", "/v1/users",
          R"({"name":")" + std::string(65, 'n') + "\"}", {}, 400, "bad_request"),
      // Reading what is not yours, or not there.
      Bad("another user's balance", "GET", sender_balance_path, "", As(other), 403, "forbidden"),
      Bad("another user's history", "GET", sender_history, "", As(other), 403, "forbidden"),
      Bad("balance of user abc", "GET", "/v1/users/abc/balance", "", As(sender), 400,
          "bad_request"),
      Bad("history of an unknown kind", "GET", sender_history + "?kind=stolen", "", As(sender), 400,
          "bad_request"),
      Bad("history with limit 0", "GET", sender_history + "?limit=0", "", As(sender), 400,
          "bad_request"),
      Bad("history with limit 101", "GET", sender_history + "?limit=101", "", As(sender), 400,
          "bad_request"),
      Bad("unknown packet", "GET", "/v1/packets/999999", "", As(sender), 404, "not_found"),
      Bad("grab of an unknown packet", "POST", "/v1/packets/999999/grab", "", As(other), 404,
          "not_found"),
      Bad("non-numeric packet id", "GET", "/v1/packets/abc", "", As(sender), 400, "bad_request"),
      Bad("grab of a non-numeric packet id", "POST", "/v1/packets/abc/grab", "", As(other), 400,
          "bad_request"),
      Bad("grab of packet 0", "POST", "/v1/packets/0/grab", "", As(other), 400, "bad_request"),
      Bad("grab of packet -1", "POST", "/v1/packets/-1/grab", "", As(other), 400, "bad_request"),
      Bad("grab of an overflowing packet id", "POST", "/v1/packets/99999999999999999999/grab", "",
          As(other), 400, "bad_request"),
      Bad("grab of packet 1.5", "POST", "/v1/packets/1.5/grab", "", As(other), 400, "bad_request"),
      Bad("grab without a caller", "POST", "/v1/packets/" + exclusive + "/grab", "", {}, 401,
          "unauthenticated"),
      Bad("grab of another user's exclusive packet", "POST", "/v1/packets/" + exclusive + "/grab",
          "", As(other), 403, "forbidden"),
      Bad("seed grab with user abc", "GET", "/grab?user_id=abc&red_packet_id=1", "", {}, 400,
          "bad_request"),
      Bad("seed grab of an unknown packet", "GET", "/grab?user_id=2&red_packet_id=999999", "", {},
          404, "not_found"),
      Bad("seed grab of another user's exclusive packet", "GET",
          "/grab?user_id=" + std::to_string(other) + "&red_packet_id=" + exclusive, "", {}, 403,
          "forbidden"),
      Bad("unknown endpoint", "GET", "/v1/nothing", "", As(sender), 404, "not_found"),
  };

  RunTable(cases, [&] {
    EXPECT_EQ(Balance(sender), sender_balance);
    EXPECT_EQ(Balance(other), 100);
    EXPECT_EQ(Balance(receiver), 0);
  });
  if (HasFatalFailure()) return;

  // Nothing was created: the next packet takes the next id; the exclusive packet is still whole
  // and its receiver can take it.
  const ApiReply details = Call("GET", "/v1/packets/" + exclusive, "", 1);
  ASSERT_EQ(details.status, 200) << Describe(details);
  EXPECT_EQ(details.Int("remaining_count"), 1);
  EXPECT_TRUE(details.json.as_object().at("grabs").as_array().empty()) << details.body;
  EXPECT_EQ(CreatePacket(sender, R"({"total_cents":100,"count":1})"), "2");
  const ApiReply taken = Call("POST", "/v1/packets/" + exclusive + "/grab", "", receiver);
  EXPECT_EQ(taken.status, 200) << Describe(taken);
  EXPECT_EQ(Balance(sender), sender_balance - 100);
  EXPECT_EQ(Balance(receiver), 100);
  ExpectAuditOk();
}

// Endpoints that read a query string, asked without one ("?" absent, not just empty): an answer,
// not a crash.
TEST_F(ApiBadInputTest, QueryEndpointsWithoutAQueryStringAnswer) {
  const std::int64_t user = CreateFundedUser("user", 100);
  ApiReply reply = Call("GET", "/v1/users/" + std::to_string(user) + "/history", "", user);
  EXPECT_EQ(reply.status, 200) << Describe(reply);
  EXPECT_TRUE(reply.json.is_object() && reply.json.as_object().at("items").is_array())
      << reply.body;
  reply = Call("GET", "/grab");
  EXPECT_EQ(reply.status, 400) << Describe(reply);
  EXPECT_EQ(reply.Error(), "bad_request");
}

}  // namespace
}  // namespace redpacket::testing_support
