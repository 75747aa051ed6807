// AppendWire: every response carries the security headers once, whatever its status, and the
// headers that vary (Retry-After, Allow, Connection: close) only when asked for.
#include "http/transport/response.h"

#include <gtest/gtest.h>

#include <string>

namespace redpacket::http {
namespace {

std::size_t Count(const std::string& text, std::string_view part) {
  std::size_t count = 0;
  for (auto at = text.find(part); at != std::string::npos; at = text.find(part, at + 1)) ++count;
  return count;
}

std::string Wire(const Response& response) {
  std::string out;
  AppendWire(response, out);
  return out;
}

TEST(ResponseTest, EveryStatusCarriesTheSecurityHeadersOnce) {
  for (int status : {200, 201, 400, 401, 404, 405, 413, 429, 500, 503}) {
    Response response;
    response.status = status;
    response.body = "{}";
    const std::string wire = Wire(response);
    SCOPED_TRACE(wire);
    EXPECT_EQ(Count(wire, kSecurityHeaders), 1u);
    EXPECT_EQ(Count(wire,
                    "Content-Security-Policy: default-src 'self'; script-src 'self'; style-src "
                    "'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; "
                    "base-uri 'none'\r\n"),
              1u);
    EXPECT_EQ(Count(wire, "X-Content-Type-Options: nosniff\r\n"), 1u);
    EXPECT_EQ(Count(wire, "X-Frame-Options: DENY\r\n"), 1u);
    // The head ends once, right before the body.
    EXPECT_EQ(wire.find("\r\n\r\n") + 4, wire.size() - 2);
  }
}

TEST(ResponseTest, TheVaryingHeadersOnlyWhenAskedFor) {
  Response plain;
  const std::string plain_wire = Wire(plain);
  EXPECT_EQ(Count(plain_wire, "Retry-After"), 0u);
  EXPECT_EQ(Count(plain_wire, "Allow"), 0u);
  EXPECT_EQ(Count(plain_wire, "Connection: close"), 0u);

  Response limited = ErrorResponse(domain::ErrorCode::kRateLimited, "slow down");
  limited.retry_after_s = 3;
  EXPECT_EQ(Count(Wire(limited), "\r\nRetry-After: 3\r\n"), 1u);

  Response not_allowed = ErrorResponse(domain::ErrorCode::kMethodNotAllowed, "no");
  not_allowed.allow = "GET, POST";
  not_allowed.close = true;
  const std::string wire = Wire(not_allowed);
  EXPECT_TRUE(wire.starts_with("HTTP/1.1 405 Method Not Allowed\r\n")) << wire;
  EXPECT_EQ(Count(wire, "\r\nAllow: GET, POST\r\n"), 1u);
  EXPECT_EQ(Count(wire, "\r\nConnection: close\r\n\r\n"), 1u);
  EXPECT_EQ(Count(wire, R"("error":"method_not_allowed")"), 1u);
}

}  // namespace
}  // namespace redpacket::http
