// Bearer tokens: round trip, forgery, expiry, secret rotation lists.
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

TEST(Token, RotationListVerifiesUnderAnySecret) {
  const std::vector<std::string> secrets = {"new", "old"};
  TokenClaims claims;
  EXPECT_EQ(VerifyToken(SignToken({7, 2000, false}, "new"), secrets, 1000, &claims), TokenCheck::kValid);
  EXPECT_EQ(claims.user_id, 7);
  EXPECT_EQ(VerifyToken(SignToken({8, 2000, true}, "old"), secrets, 1000, &claims), TokenCheck::kValid);
  EXPECT_EQ(claims.user_id, 8);
  EXPECT_TRUE(claims.admin);
  EXPECT_EQ(VerifyToken(SignToken({9, 2000, false}, "retired"), secrets, 1000, &claims),
            TokenCheck::kBadSignature);
  EXPECT_EQ(VerifyToken(SignToken({9, 2000, false}, "old"), secrets, 2000, &claims), TokenCheck::kExpired);
  EXPECT_EQ(VerifyToken("garbage", secrets, 1000, &claims), TokenCheck::kMalformed);
  EXPECT_EQ(VerifyToken(SignToken({9, 2000, false}, "new"), std::vector<std::string>{}, 1000, &claims),
            TokenCheck::kBadSignature);
}

TEST(Token, ParsesSecretLists) {
  EXPECT_EQ(ParseTokenSecrets("only"), std::vector<std::string>{"only"});
  EXPECT_EQ(ParseTokenSecrets("new, old ,older"), (std::vector<std::string>{"new", "old", "older"}));
  EXPECT_THROW(ParseTokenSecrets(""), std::invalid_argument);
  EXPECT_THROW(ParseTokenSecrets("new,"), std::invalid_argument);
  EXPECT_THROW(ParseTokenSecrets("new,,old"), std::invalid_argument);
  EXPECT_THROW(ParseTokenSecrets(" "), std::invalid_argument);
}

}  // namespace
}  // namespace redpacket::http
