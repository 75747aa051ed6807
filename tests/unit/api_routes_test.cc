// What the API's routing table answers, in-process (tests/support/api_fixture.h): another method
// on a known path is a 405 naming the path's methods in Allow (an unknown path stays 404), and
// GET /openapi.json serves docs/openapi.yaml as built. The headers every response carries (the
// security headers, Retry-After, Allow as written) are the transport's: e2e/headers_e2etest.cc.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>

#include "tests/support/api_fixture.h"

namespace redpacket::testing_support {
namespace {

class ApiRoutesTest : public ApiFixture {};

TEST_F(ApiRoutesTest, AnotherMethodOnAKnownPathIs405WithAllow) {
  struct Case {
    std::string method, target, allow;
  };
  for (const Case& c : {Case{"DELETE", "/v1/packets/1", "GET"}, Case{"GET", "/v1/packets", "POST"},
                        Case{"PUT", "/v1/packets/1/grab", "POST"}, Case{"POST", "/healthz", "GET"},
                        Case{"TRACE", "/", "GET"}}) {
    SCOPED_TRACE(c.method + " " + c.target);
    const ApiReply reply = Call(c.method, c.target, "", 7);
    EXPECT_EQ(reply.status, 405) << Describe(reply);
    EXPECT_EQ(reply.allow, c.allow);
    EXPECT_EQ(reply.Error(), "method_not_allowed") << Describe(reply);
  }
  // An unknown path stays 404.
  EXPECT_EQ(Call("DELETE", "/v1/nothing", "", 7).status, 404);
}

TEST_F(ApiRoutesTest, ServesTheDescriptionAsBuilt) {
  const ApiReply reply = Call("GET", "/openapi.json");
  ASSERT_EQ(reply.status, 200);
  EXPECT_EQ(reply.content_type, "application/json");
  std::ifstream file(REDPACKET_OPENAPI_JSON);
  ASSERT_TRUE(file) << REDPACKET_OPENAPI_JSON;
  std::stringstream built;
  built << file.rdbuf();
  ASSERT_TRUE(reply.json.is_object()) << reply.body.substr(0, 200);
  EXPECT_EQ(reply.json, boost::json::parse(built.str()));
  const boost::json::object& description = reply.json.as_object();
  EXPECT_EQ(description.at("openapi").as_string(), "3.1.0");
  EXPECT_TRUE(description.at("paths").as_object().contains("/v1/packets/{id}/grab"));
}

}  // namespace
}  // namespace redpacket::testing_support
