// Response headers as the transport writes them (src/http/transport/response.cc), against the
// real binary: every kind of answer (200, 400, 401, 404, 405, 413, 429 with its Retry-After, the
// Prometheus text, the description itself) carries the security headers; an empty Authorization
// line reaches the API as a header that is present. What http::Api decides (a 405's Allow, an
// empty Authorization header refused, the description served as built) is tested in-process:
// tests/unit/api_routes_test.cc and api_access_test.cc.
#include <gtest/gtest.h>

#include "harness.h"

namespace redpacket::e2e {
namespace {

constexpr std::string_view kContentSecurityPolicy =
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'";

// A response header by its lower-case name, "<absent>" when there is none.
std::string Header(const http::ClientResponse& response, const std::string& name) {
  const auto found = response.headers.find(name);
  return found == response.headers.end() ? std::string("<absent>") : found->second;
}

// The security headers of docs/API.md, with a trace naming the answer that lacks them.
void ExpectSecurityHeaders(const http::ClientResponse& response, std::string_view what) {
  SCOPED_TRACE(std::string(what) + ": " + std::to_string(response.status) + " " + response.body);
  ASSERT_NE(response.status, 0);
  const auto header = [&](const std::string& name) { return Header(response, name); };
  EXPECT_EQ(header("content-security-policy"), kContentSecurityPolicy);
  EXPECT_EQ(header("x-content-type-options"), "nosniff");
  EXPECT_EQ(header("x-frame-options"), "DENY");
}

TEST(HeadersE2E, EveryKindOfAnswerCarriesTheSecurityHeaders) {
  ServerProcess server({"--rate-limit-per-user", "1", "--rate-limit-burst", "1"});
  server.Start();
  auto client = server.NewClient();
  const std::map<std::string, std::string> as_user{{"X-User-Id", "7"}};

  ExpectSecurityHeaders(client->Get("/healthz"), "health");
  ExpectSecurityHeaders(client->Get("/metrics"), "metrics");
  ExpectSecurityHeaders(client->Get("/openapi.json"), "description");
  ExpectSecurityHeaders(client->Get("/v1/nothing", as_user), "unknown path");
  ExpectSecurityHeaders(client->Post("/v1/packets", "{not json", as_user), "bad body");
  // The same user's second request within the second: its bucket (burst 1) is empty.
  const http::ClientResponse limited = client->Post("/v1/packets", "{}", as_user);
  ASSERT_EQ(limited.status, 429) << limited.body;
  EXPECT_TRUE(limited.headers.contains("retry-after"));
  ExpectSecurityHeaders(limited, "rate limited");
  ExpectSecurityHeaders(client->Get("/v1/users/1/balance", {{"Authorization", "Basic x"}}),
                        "unauthenticated");
  ExpectSecurityHeaders(client->Request("DELETE", "/v1/packets/1"), "method not allowed");
  // Oversized headers: the server answers 413 and closes; a fresh client for it.
  auto oversized = server.NewClient();
  ExpectSecurityHeaders(oversized->Get("/healthz", {{"X-Padding", std::string(9 * 1024, 'p')}}),
                        "headers too large");
}

// The parser's side of ApiDevAccessTest.AnEmptyAuthorizationHeaderIsRefusedNotReplacedByXUserId:
// "Authorization:" with nothing after it is a header that is present (so refused), not one the
// transport drops (which would let X-User-Id name the caller).
TEST(HeadersE2E, AnEmptyAuthorizationLineIsAPresentHeader) {
  ServerProcess server;  // --dev: X-User-Id alone would be accepted
  server.Start();
  ApiClient api(server);
  EXPECT_EQ(api.Get("/v1/users/7/balance", 7).status, 200);
  const Reply reply = api.Get("/v1/users/7/balance", 7, {{"Authorization", ""}});
  EXPECT_EQ(reply.status, 401) << Describe(reply);
  EXPECT_EQ(reply.Error(), "unauthenticated");
}

}  // namespace
}  // namespace redpacket::e2e
