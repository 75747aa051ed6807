// Who may call the API, in-process (tests/support/api_fixture.h): a server with bearer tokens only
// (no --dev) refuses missing, forged, foreign and expired tokens and changes nothing; the token
// secret list signs with its first and accepts any; an empty Authorization header is refused, not
// replaced by X-User-Id; and the per-caller rate limit (decided in http::Api: 429 rate_limited with
// a Retry-After, other callers and health checks unaffected, admin tokens never limited). The
// limits the transport keeps (connection caps, slow heads) are tests/e2e/limits_e2etest.cc.
#include <gtest/gtest.h>

#include <chrono>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "app/commands.h"
#include "app/config.h"
#include "http/access/token.h"
#include "tests/support/api_fixture.h"
#include "tests/support/bad_requests.h"

namespace redpacket::testing_support {
namespace {

constexpr const char* kSecret = "api-token-secret";

ApiFixtureOptions TokenServer(std::string secret = kSecret) {
  ApiFixtureOptions options;
  options.dev = false;
  options.token_secret = std::move(secret);
  return options;
}

class ApiTokenServerTest : public ApiFixture {
 protected:
  ApiTokenServerTest() : ApiFixture(TokenServer()) {}
};

TEST_F(ApiTokenServerTest, RejectsMissingForgedAndExpiredTokens) {
  const Headers admin = Bearer(Token(1000, /*admin=*/true));
  ApiReply reply = Call("POST", "/v1/users", R"({"name":"sender"})", 0, admin);
  ASSERT_EQ(reply.status, 201) << Describe(reply);
  const std::int64_t sender = reply.Int("user_id");
  reply = Call("POST", "/v1/users", R"({"name":"other"})", 0, admin);
  ASSERT_EQ(reply.status, 201) << Describe(reply);
  const std::int64_t other = reply.Int("user_id");
  reply = Call("POST", "/v1/users/" + std::to_string(sender) + "/deposit",
               R"({"amount_cents":5000})", 0, admin);
  ASSERT_EQ(reply.status, 200) << Describe(reply);

  const std::string sender_token = Token(sender);
  ASSERT_TRUE(sender_token.starts_with("rp1.")) << sender_token;
  const Headers as_sender = Bearer(sender_token);
  const Headers as_other = Bearer(Token(other));
  std::string forged = sender_token;
  forged.back() = forged.back() == '0' ? '1' : '0';  // one hex digit of the signature
  std::string other_user = sender_token;             // another user id under the sender's signature
  other_user.replace(4, std::to_string(sender).size(), std::to_string(other));
  const std::int64_t now = domain::ToUnixSeconds(clock().Now());
  const std::string expired = http::SignToken({sender, now - 10, false}, kSecret);
  const std::string expired_admin = http::SignToken({1000, now - 10, true}, kSecret);
  const std::string wrong_secret = http::SignToken({sender, now + 3600, false}, "another-secret");

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
  for (const BadCase& bad : cases) {
    SCOPED_TRACE(bad.name);
    ExpectRefused(bad, Call(bad.method, bad.target, bad.body, 0, bad.headers));
    const ApiReply now_balance = Call("GET", balance, "", 0, as_sender);
    ASSERT_EQ(now_balance.status, 200) << Describe(now_balance);
    EXPECT_EQ(now_balance.Int("balance_cents") + now_balance.Int("pending_cents"), 5000);
  }

  // Nothing was created: the first packet made with a valid token is packet 1.
  reply = Call("POST", create, body, 0, as_sender);
  ASSERT_EQ(reply.status, 201) << Describe(reply);
  EXPECT_EQ(reply.String("packet_id"), "1");
  reply = Call("POST", "/v1/packets/1/grab", "", 0, as_other);
  EXPECT_EQ(reply.status, 200) << Describe(reply);

  // A token is good until its expiry on the server's clock, and refused from that second on.
  const std::string short_lived = Token(other, false, std::chrono::seconds(60));
  const std::string other_balance = "/v1/users/" + std::to_string(other) + "/balance";
  clock().Advance(std::chrono::seconds(59));
  EXPECT_EQ(Call("GET", other_balance, "", 0, Bearer(short_lived)).status, 200);
  clock().Advance(std::chrono::seconds(1));
  reply = Call("GET", other_balance, "", 0, Bearer(short_lived));
  EXPECT_EQ(reply.status, 401) << Describe(reply);
  EXPECT_EQ(reply.Error(), "unauthenticated");
}

// A secret list "new,old": `redpacket token` signs with the first, the server accepts either and
// nothing else. The fixture's clock starts at the real now: the token command dates its tokens
// from the system clock.
class ApiTokenRotationTest : public ApiFixture {
 protected:
  static ApiFixtureOptions Options() {
    ApiFixtureOptions options = TokenServer("new-secret,old-secret");
    options.start = domain::FromUnixMillis(domain::ToUnixMillis(domain::SystemTime().Now()));
    return options;
  }
  ApiTokenRotationTest() : ApiFixture(Options()) {}
};

TEST_F(ApiTokenRotationTest, TokenSecretListSignsWithTheFirstAndAcceptsAny) {
  const std::int64_t expires = domain::ToUnixSeconds(clock().Now()) + 600;
  // An unknown packet: 404 once the caller is accepted, 401 before.
  auto status_as = [&](const std::string& token) {
    return Call("GET", "/v1/packets/999999", "", 0, Bearer(token)).status;
  };
  EXPECT_EQ(status_as(http::SignToken({5, expires, false}, "old-secret")), 404);
  EXPECT_EQ(status_as(http::SignToken({5, expires, false}, "new-secret")), 404);
  EXPECT_EQ(status_as(http::SignToken({5, expires, false}, "retired-secret")), 401);
  // `redpacket token` signs with the first secret only.
  app::Config config;
  config.token_secret = "new-secret,old-secret";
  ::testing::internal::CaptureStdout();
  const int exit_code = app::RunToken(config, 5, 86400, false);
  const std::string output = ::testing::internal::GetCapturedStdout();
  ASSERT_EQ(exit_code, 0) << output;
  const std::string printed = output.substr(0, output.find('\n'));
  http::TokenClaims claims;
  EXPECT_EQ(http::VerifyToken(printed, "new-secret", expires - 600, &claims),
            http::TokenCheck::kValid);
  EXPECT_EQ(http::VerifyToken(printed, "old-secret", expires - 600, &claims),
            http::TokenCheck::kBadSignature);
  EXPECT_EQ(status_as(printed), 404);
}

class ApiDevAccessTest : public ApiFixture {};

// --dev accepts X-User-Id alone, but an Authorization header that is sent is checked, even empty.
TEST_F(ApiDevAccessTest, AnEmptyAuthorizationHeaderIsRefusedNotReplacedByXUserId) {
  EXPECT_EQ(Call("GET", "/v1/users/7/balance", "", 7).status, 200);
  const ApiReply reply = Call("GET", "/v1/users/7/balance", "", 7, {{"Authorization", ""}});
  EXPECT_EQ(reply.status, 401) << Describe(reply);
  EXPECT_EQ(reply.Error(), "unauthenticated");
}

// The value of the series `series` (name and labels exactly as exported) in the API's /metrics;
// -1 if absent.
double Metric(const ApiReply& metrics, const std::string& series) {
  std::istringstream lines(metrics.body);
  for (std::string line; std::getline(lines, line);) {
    if (line.starts_with(series + " ")) return std::stod(line.substr(series.size() + 1));
  }
  return -1;
}

// The rate limit counts real time (steady_clock), not the manual clock: the refill is real.
class ApiRateLimitTest : public ApiFixture {
 protected:
  static ApiFixtureOptions Options() {
    ApiFixtureOptions options;  // --dev, with the limit asked for
    options.rate_limit_per_user = 5;
    options.rate_limit_burst = 10;
    return options;
  }
  ApiRateLimitTest() : ApiFixture(Options()) {}
};

TEST_F(ApiRateLimitTest, OneCallerIsRateLimitedWithRetryAfterAndOthersAreNot) {
  const std::int64_t sender = CreateFundedUser("sender", 10000);
  const std::string packet =
      CreatePacket(sender, R"({"total_cents":1000,"count":10,"kind":"equal"})");

  // One caller, 40 requests back to back: the burst of 10 (and what refills meanwhile) passes.
  int ok = 0, limited = 0;
  for (int i = 0; i < 40; ++i) {
    const ApiReply reply = Call("GET", "/v1/packets/" + packet, "", 7);
    if (reply.status == 200) {
      ++ok;
      continue;
    }
    ASSERT_EQ(reply.status, 429) << Describe(reply);
    ++limited;
    EXPECT_EQ(reply.Error(), "rate_limited");
    EXPECT_GE(reply.retry_after_s, 1) << "a 429 without a Retry-After";
  }
  EXPECT_GE(ok, 10);
  EXPECT_LE(ok, 15);
  EXPECT_GE(limited, 25);
  // The hot caller's bucket is empty; another caller grabs at once and health checks pass.
  const ApiReply grab = Call("POST", "/v1/packets/" + packet + "/grab", "", 8);
  EXPECT_EQ(grab.status, 200) << Describe(grab);
  for (int i = 0; i < 30; ++i) ASSERT_EQ(Call("GET", "/healthz").status, 200);
  EXPECT_GE(Metric(Call("GET", "/metrics"),
                   R"(redpacket_http_requests_total{route="packet",status="429"})"),
            limited);
  // Retry-After was honest: after it, the caller is served again.
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  EXPECT_EQ(Call("GET", "/v1/packets/" + packet, "", 7).status, 200);
}

// Without --dev, serve's default limit (rate_limit_per_user 20, burst 40: app::Config) applies to
// users; admin tokens (operators' scripts) are never limited.
class ApiDefaultRateLimitTest : public ApiFixture {
 protected:
  static ApiFixtureOptions Options() {
    ApiFixtureOptions options = TokenServer();
    options.rate_limit_per_user = app::Config{}.rate_limit_per_user;
    options.rate_limit_burst = app::Config{}.rate_limit_burst;
    return options;
  }
  ApiDefaultRateLimitTest() : ApiFixture(Options()) {}
};

TEST_F(ApiDefaultRateLimitTest, ByDefaultAUserIsLimitedAndAnAdminTokenIsNot) {
  auto count_limited = [&](std::int64_t user, bool admin) {
    const Headers headers = Bearer(Token(user, admin));
    int limited = 0;
    for (int i = 0; i < 100; ++i)
      limited += Call("GET", "/v1/packets/999999", "", 0, headers).status == 429;
    return limited;
  };
  EXPECT_EQ(count_limited(1, /*admin=*/true), 0);
  EXPECT_GE(count_limited(5, /*admin=*/false), 40);  // burst 40 (+ refill at 20/s)
}

}  // namespace
}  // namespace redpacket::testing_support
