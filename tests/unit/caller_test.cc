// Who calls (http/access/caller.h): the bearer token's user, --dev's X-User-Id, and the 401 for a
// credential that is sent but not valid (never replaced by X-User-Id or by no caller).
#include "http/access/caller.h"

#include <gtest/gtest.h>

#include "http/access/token.h"

namespace redpacket::http {
namespace {

const std::vector<std::string> kSecrets = {"new", "old"};
constexpr std::int64_t kNow = 1000;

Request WithAuthorization(std::string value) {
  Request request;
  request.has_authorization = true;
  request.authorization = std::move(value);
  return request;
}

TEST(Caller, NoCredentialIsNoCaller) {
  const CallerCheck check = IdentifyCaller(Request{}, kSecrets, false, kNow);
  EXPECT_FALSE(check.caller);
  EXPECT_FALSE(check.rejection);
}

TEST(Caller, BearerTokenUnderAnySecretOfTheList) {
  const CallerCheck user = IdentifyCaller(
      WithAuthorization("Bearer " + SignToken({7, 2000, false}, "old")), kSecrets, false, kNow);
  ASSERT_TRUE(user.caller);
  EXPECT_EQ(user.caller->user_id, 7);
  EXPECT_FALSE(user.caller->admin);
  EXPECT_FALSE(user.rejection);

  const CallerCheck admin = IdentifyCaller(
      WithAuthorization("Bearer " + SignToken({1, 2000, true}, "new")), kSecrets, false, kNow);
  ASSERT_TRUE(admin.caller);
  EXPECT_TRUE(admin.caller->admin);
}

TEST(Caller, InvalidCredentialsAreRejectedWithTheirReason) {
  const auto rejection = [](std::string authorization) {
    const CallerCheck check =
        IdentifyCaller(WithAuthorization(std::move(authorization)), kSecrets, false, kNow);
    EXPECT_FALSE(check.caller);
    return std::string(check.rejection.value_or("<accepted>"));
  };
  EXPECT_EQ(rejection(""), "Authorization must be 'Bearer <token>'");
  EXPECT_EQ(rejection("Bearer "), "Authorization must be 'Bearer <token>'");
  EXPECT_EQ(rejection("Basic abc"), "Authorization must be 'Bearer <token>'");
  EXPECT_EQ(rejection("Bearer garbage"), "the token is not valid");
  EXPECT_EQ(rejection("Bearer " + SignToken({7, 2000, false}, "other")), "the token is not valid");
  EXPECT_EQ(rejection("Bearer " + SignToken({7, kNow, false}, "new")), "the token has expired");
}

TEST(Caller, UserIdHeaderOnlyInDevAndNeverOverABadToken) {
  Request request;
  request.user_id_header = "42";
  EXPECT_FALSE(IdentifyCaller(request, kSecrets, false, kNow).caller);
  const CallerCheck dev = IdentifyCaller(request, kSecrets, true, kNow);
  ASSERT_TRUE(dev.caller);
  EXPECT_EQ(dev.caller->user_id, 42);
  EXPECT_FALSE(dev.caller->admin);

  request.user_id_header = "0";
  EXPECT_EQ(IdentifyCaller(request, kSecrets, true, kNow).rejection,
            "X-User-Id must be a positive integer below 2^53");

  Request both = WithAuthorization("Bearer garbage");
  both.user_id_header = "42";
  const CallerCheck check = IdentifyCaller(both, kSecrets, true, kNow);
  EXPECT_FALSE(check.caller);
  EXPECT_EQ(check.rejection, "the token is not valid");
}

}  // namespace
}  // namespace redpacket::http
