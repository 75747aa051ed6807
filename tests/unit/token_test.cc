// Bearer tokens: round trip, forgery, expiry.
#include <gtest/gtest.h>

#include "http/token.h"

namespace redpacket::http {
namespace {

TEST(Token, RoundTrip) {
  const std::string token = SignToken({42, 2000, true}, "secret");
  TokenClaims claims;
  ASSERT_EQ(VerifyToken(token, "secret", 1000, &claims), TokenCheck::kValid);
  EXPECT_EQ(claims.user_id, 42);
  EXPECT_TRUE(claims.admin);
}

TEST(Token, RejectsForgeriesAndExpiry) {
  const std::string token = SignToken({42, 2000, false}, "secret");
  TokenClaims claims;
  EXPECT_EQ(VerifyToken(token, "other", 1000, &claims), TokenCheck::kBadSignature);
  std::string forged = token;
  forged.replace(4, 2, "43");  // another user id, same signature
  EXPECT_EQ(VerifyToken(forged, "secret", 1000, &claims), TokenCheck::kBadSignature);
  std::string admin = token;
  admin[admin.rfind('.') - 1] = '1';  // claim admin
  EXPECT_EQ(VerifyToken(admin, "secret", 1000, &claims), TokenCheck::kBadSignature);
  EXPECT_EQ(VerifyToken(token, "secret", 2000, &claims), TokenCheck::kExpired);
  EXPECT_EQ(VerifyToken("garbage", "secret", 1000, &claims), TokenCheck::kMalformed);
  EXPECT_EQ(VerifyToken("", "secret", 1000, &claims), TokenCheck::kMalformed);
}

}  // namespace
}  // namespace redpacket::http
