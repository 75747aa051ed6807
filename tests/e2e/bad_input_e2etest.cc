// A table of bad requests: each gets the right 4xx with a JSON error code and changes nothing
// (balances stay, no packet is created: the next packet's id continues the sequence).
// One table against a --dev server, one against a server with bearer tokens only.
#include <gtest/gtest.h>

#include <chrono>
#include <set>

#include "harness.h"
#include "http/access/token.h"

namespace redpacket::e2e {
namespace {

struct BadCase {
  std::string name;
  std::string method;
  std::string target;
  std::string body;
  Headers headers;
  int status;
  std::string error;  // the expected "error" code
};

// The server's exit code if it died. A crash shows as a transport error first (status 0): then
// give the process a moment to be reaped.
std::optional<int> CrashOf(ServerProcess& server, const Reply& reply) {
  std::optional<int> code;
  WaitUntil([&] { return (code = server.PollExit()).has_value(); },
            milliseconds(reply.status == 0 ? 1000 : 0));
  return code;
}

// Runs every case on a fresh connection (a protocol error may close it), then `unchanged`.
void RunTable(ServerProcess& server, const std::vector<BadCase>& cases,
              const std::function<void()>& unchanged) {
  for (const BadCase& bad : cases) {
    SCOPED_TRACE(bad.name);
    ApiClient client(server);
    const Reply reply = client.Request(bad.method, bad.target, bad.body, 0, bad.headers);
    if (const auto code = CrashOf(server, reply)) {
      FAIL() << "the server died (exit code " << *code << ") on: " << bad.method << " "
             << bad.target;
    }
    // Oversized headers: 431 is the usual answer, 413 payload_too_large is ours; both are fine.
    if (bad.status == 431 && reply.status == 413) {
      EXPECT_EQ(reply.Error(), "payload_too_large") << Describe(reply);
      continue;
    }
    EXPECT_EQ(reply.status, bad.status) << Describe(reply);
    if (reply.status == 431) continue;
    EXPECT_EQ(reply.Error(), bad.error) << Describe(reply);
    const json::object* body = reply.json.if_object();
    EXPECT_TRUE(body != nullptr && body->contains("message") && body->at("message").is_string())
        << reply.body;
    unchanged();
  }
}

BadCase Bad(std::string name, std::string method, std::string target, std::string body,
            Headers headers, int status, std::string error) {
  return {std::move(name), std::move(method),  std::move(target),
          std::move(body), std::move(headers), status,
          std::move(error)};
}

Headers As(std::int64_t user) { return {{"X-User-Id", std::to_string(user)}}; }
Headers Bearer(const std::string& token) { return {{"Authorization", "Bearer " + token}}; }

std::string PacketBody(std::string_view fields) { return "{" + std::string(fields) + "}"; }

std::string Repeat(std::string_view text, int times) {
  std::string out;
  for (int i = 0; i < times; ++i) out += text;
  return out;
}

TEST(BadInputE2E, DevServerRejectsBadRequestsAndChangesNothing) {
  ServerProcess server;  // default limits: max_count 100, max_total_cents 20000, expiry 60..86400 s
  server.Start();
  ApiClient api(server);
  const std::int64_t sender = api.CreateFundedUser("sender", 50000);
  const std::int64_t other = api.CreateFundedUser("other", 100);
  const std::int64_t receiver = api.CreateUser("receiver");
  const std::string exclusive = api.CreatePacket(
      sender, R"({"total_cents":100,"count":1,"receiver_id":)" + std::to_string(receiver) + "}");
  ASSERT_EQ(exclusive, "1");
  const std::int64_t sender_balance = api.GetBalance(sender).total();

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
      // Sizes.
      packet("body over 64 KiB",
             R"("total_cents":100,"count":1,"greeting":")" +
                 std::string(std::size_t{70} * 1024, 'x') + "\"",
             413, "payload_too_large"),
      Bad("headers over 8 KiB", "POST", create, R"({"total_cents":100,"count":1})",
          {{"X-User-Id", std::to_string(sender)},
           {"X-Padding", std::string(std::size_t{9} * 1024, 'p')}},
          431, "payload_too_large"),
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

  RunTable(server, cases, [&] {
    ApiClient check(server);
    EXPECT_EQ(check.GetBalance(sender).total(), sender_balance);
    EXPECT_EQ(check.GetBalance(other).total(), 100);
    EXPECT_EQ(check.GetBalance(receiver).total(), 0);
  });
  if (HasFatalFailure()) return;

  // Nothing was created: the next packet takes the next id; the exclusive packet is still whole
  // and its receiver can take it.
  ApiClient after(server);
  const json::object details = after.GetPacket(exclusive);
  EXPECT_EQ(details.at("remaining_count").as_int64(), 1);
  EXPECT_TRUE(details.at("grabs").as_array().empty());
  EXPECT_EQ(after.CreatePacket(sender, R"({"total_cents":100,"count":1})"), "2");
  const Reply taken = after.Post("/v1/packets/" + exclusive + "/grab", "", receiver);
  EXPECT_EQ(taken.status, 200) << Describe(taken);
  EXPECT_EQ(after.GetBalance(sender).total(), sender_balance - 100);
  EXPECT_EQ(after.GetBalance(receiver).total(), 100);

  ASSERT_EQ(server.Stop(), 0);
  const CommandResult audit = server.Audit();
  EXPECT_EQ(audit.exit_code, 0) << audit.output;
}

// Endpoints that read a query string, asked without one ("?" absent, not just empty).
TEST(BadInputE2E, QueryEndpointsWithoutAQueryStringAnswer) {
  ServerProcess server;
  server.Start();
  ApiClient api(server);
  const std::int64_t user = api.CreateFundedUser("user", 100);
  Reply reply = api.Get("/v1/users/" + std::to_string(user) + "/history", user);
  if (const auto code = CrashOf(server, reply))
    FAIL() << "the server died (exit code " << *code << ") on GET history";
  EXPECT_EQ(reply.status, 200) << Describe(reply);
  EXPECT_TRUE(reply.at("items").is_array()) << reply.body;
  reply = api.Get("/grab");
  if (const auto code = CrashOf(server, reply))
    FAIL() << "the server died (exit code " << *code << ") on GET /grab";
  EXPECT_EQ(reply.status, 400) << Describe(reply);
  EXPECT_EQ(reply.Error(), "bad_request");
  ASSERT_EQ(server.Stop(), 0);
}

std::string Token(std::int64_t user, std::string_view secret, bool admin = false) {
  std::vector<std::string> arguments{"token", "--user", std::to_string(user), "--token-secret",
                                     std::string(secret)};
  if (admin) arguments.push_back("--admin");
  const CommandResult result = RunRedpacket(arguments);
  if (result.exit_code != 0) throw std::runtime_error("redpacket token failed: " + result.output);
  std::string token = result.output;
  while (!token.empty() && (token.back() == '\n' || token.back() == '\r')) token.pop_back();
  if (token.find('\n') != std::string::npos || !token.starts_with("rp1.")) {
    throw std::runtime_error("redpacket token printed more than a token: " + result.output);
  }
  return token;
}

TEST(BadInputE2E, TokenServerRejectsMissingForgedAndExpiredTokens) {
  constexpr std::string_view kSecret = "e2e-token-secret";
  ServerProcess server({"--token-secret", std::string(kSecret)}, /*dev=*/false);
  server.Start();
  ApiClient api(server);
  const Headers admin = Bearer(Token(1000, kSecret, /*admin=*/true));
  Reply reply = api.Post("/v1/users", R"({"name":"sender"})", 0, admin);
  ASSERT_EQ(reply.status, 201) << Describe(reply);
  const std::int64_t sender = reply.Int("user_id");
  reply = api.Post("/v1/users", R"({"name":"other"})", 0, admin);
  ASSERT_EQ(reply.status, 201) << Describe(reply);
  const std::int64_t other = reply.Int("user_id");
  reply = api.Post("/v1/users/" + std::to_string(sender) + "/deposit", R"({"amount_cents":5000})",
                   0, admin);
  ASSERT_EQ(reply.status, 200) << Describe(reply);

  const std::string sender_token = Token(sender, kSecret);
  const Headers as_sender = Bearer(sender_token);
  const Headers as_other = Bearer(Token(other, kSecret));
  std::string forged = sender_token;
  forged.back() = forged.back() == '0' ? '1' : '0';  // one hex digit of the signature
  std::string other_user = sender_token;             // another user id under the sender's signature
  other_user.replace(4, std::to_string(sender).size(), std::to_string(other));
  const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  const std::string expired = http::SignToken({sender, now - 10, false}, kSecret);
  const std::string expired_admin = http::SignToken({1000, now - 10, true}, kSecret);
  const std::string wrong_secret = Token(sender, "another-secret");

  const std::string create = "/v1/packets";
  const std::string body = R"({"total_cents":100,"count":1})";
  const std::string balance = "/v1/users/" + std::to_string(sender) + "/balance";
  const std::vector<BadCase> cases = {
      Bad("no token", "POST", create, body, {}, 401, "unauthenticated"),
      Bad("X-User-Id without --dev", "POST", create, body, {{"X-User-Id", std::to_string(sender)}},
          401, "unauthenticated"),
      Bad("forged signature", "POST", create, body, Bearer(forged), 401, "unauthenticated"),
      Bad("another user id under a valid signature", "POST", create, body, Bearer(other_user), 401,
          "unauthenticated"),
      Bad("signed with another secret", "POST", create, body, Bearer(wrong_secret), 401,
          "unauthenticated"),
      Bad("expired token", "POST", create, body, Bearer(expired), 401, "unauthenticated"),
      Bad("expired token on a grab", "POST", "/v1/packets/1/grab", "", Bearer(expired), 401,
          "unauthenticated"),
      Bad("expired token on a balance", "GET", balance, "", Bearer(expired), 401,
          "unauthenticated"),
      Bad("Basic instead of Bearer", "POST", create, body,
          {{"Authorization", "Basic dXNlcjpwYXNz"}}, 401, "unauthenticated"),
      Bad("empty bearer", "POST", create, body, {{"Authorization", "Bearer "}}, 401,
          "unauthenticated"),
      Bad("garbage bearer", "POST", create, body, Bearer("garbage"), 401, "unauthenticated"),
      Bad("truncated token", "POST", create, body,
          Bearer(sender_token.substr(0, sender_token.size() / 2)), 401, "unauthenticated"),
      Bad("create user without a token", "POST", "/v1/users", R"({"name":"x"})", {}, 401,
          "unauthenticated"),
      Bad("create user with a user token", "POST", "/v1/users", R"({"name":"x"})", as_sender, 403,
          "forbidden"),
      Bad("deposit with a user token", "POST", "/v1/users/" + std::to_string(sender) + "/deposit",
          R"({"amount_cents":100})", as_sender, 403, "forbidden"),
      Bad("deposit with an expired admin token", "POST",
          "/v1/users/" + std::to_string(sender) + "/deposit", R"({"amount_cents":100})",
          Bearer(expired_admin), 401, "unauthenticated"),
      Bad("another user's balance", "GET", balance, "", as_other, 403, "forbidden"),
      Bad("seed grab without --dev", "GET", "/grab?user_id=1&red_packet_id=1", "", {}, 404,
          "not_found"),
  };
  RunTable(server, cases, [&] {
    ApiClient check(server);
    const Reply now_balance = check.Get(balance, 0, as_sender);
    ASSERT_EQ(now_balance.status, 200) << Describe(now_balance);
    EXPECT_EQ(now_balance.Int("balance_cents") + now_balance.Int("pending_cents"), 5000);
  });
  if (HasFatalFailure()) return;

  // Nothing was created: the first packet made with a valid token is packet 1.
  reply = api.Post(create, body, 0, as_sender);
  ASSERT_EQ(reply.status, 201) << Describe(reply);
  EXPECT_EQ(reply.String("packet_id"), "1");
  reply = api.Post("/v1/packets/1/grab", "", 0, as_other);
  EXPECT_EQ(reply.status, 200) << Describe(reply);
  ASSERT_EQ(server.Stop(), 0);
}

}  // namespace
}  // namespace redpacket::e2e
