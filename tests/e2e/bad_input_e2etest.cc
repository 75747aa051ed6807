// Bad requests that the transport (src/http/transport) refuses before http::Api sees them: a body
// over 64 KiB and headers over 8 KiB each get their 4xx with a JSON error code and change nothing
// (the balance stays, no packet is created). The API's own tables of bad requests run in-process:
// tests/unit/api_bad_input_test.cc (--dev) and api_access_test.cc (tokens only).
#include <gtest/gtest.h>

#include "harness.h"
#include "tests/support/bad_requests.h"

namespace redpacket::e2e {
namespace {

using testing_support::Bad;
using testing_support::BadCase;

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
    if (reply.status == 431) {  // a bare 431 carries no JSON body to check
      EXPECT_EQ(bad.status, 431) << Describe(reply);
      continue;
    }
    testing_support::ExpectRefused(bad, reply);
    unchanged();
  }
}

Headers As(std::int64_t user) { return {{"X-User-Id", std::to_string(user)}}; }

TEST(BadInputE2E, OversizedRequestsAreRefusedByTheTransportAndChangeNothing) {
  ServerProcess server;  // default limits: 64 KiB body, 8 KiB headers
  server.Start();
  ApiClient api(server);
  const std::int64_t sender = api.CreateFundedUser("sender", 50000);
  const std::string create = "/v1/packets";

  const std::vector<BadCase> cases = {
      Bad("body over 64 KiB", "POST", create,
          R"({"total_cents":100,"count":1,"greeting":")" +
              std::string(std::size_t{70} * 1024, 'x') + "\"}",
          As(sender), 413, "payload_too_large"),
      Bad("headers over 8 KiB", "POST", create, R"({"total_cents":100,"count":1})",
          {{"X-User-Id", std::to_string(sender)},
           {"X-Padding", std::string(std::size_t{9} * 1024, 'p')}},
          431, "payload_too_large"),
  };
  RunTable(server, cases, [&] {
    ApiClient check(server);
    EXPECT_EQ(check.GetBalance(sender).total(), 50000);
  });
  if (HasFatalFailure()) return;

  // Nothing was created: the first packet is packet 1.
  ApiClient after(server);
  EXPECT_EQ(after.CreatePacket(sender, R"({"total_cents":100,"count":1})"), "1");
  ASSERT_EQ(server.Stop(), 0);
  const CommandResult audit = server.Audit();
  EXPECT_EQ(audit.exit_code, 0) << audit.output;
}

}  // namespace
}  // namespace redpacket::e2e
