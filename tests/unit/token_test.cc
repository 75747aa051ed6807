// Bearer tokens: round trip, forgery, expiry, secret rotation lists.
#include "http/access/token.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

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
  EXPECT_EQ(VerifyToken(SignToken({7, 2000, false}, "new"), secrets, 1000, &claims),
            TokenCheck::kValid);
  EXPECT_EQ(claims.user_id, 7);
  EXPECT_EQ(VerifyToken(SignToken({8, 2000, true}, "old"), secrets, 1000, &claims),
            TokenCheck::kValid);
  EXPECT_EQ(claims.user_id, 8);
  EXPECT_TRUE(claims.admin);
  EXPECT_EQ(VerifyToken(SignToken({9, 2000, false}, "retired"), secrets, 1000, &claims),
            TokenCheck::kBadSignature);
  EXPECT_EQ(VerifyToken(SignToken({9, 2000, false}, "old"), secrets, 2000, &claims),
            TokenCheck::kExpired);
  EXPECT_EQ(VerifyToken("garbage", secrets, 1000, &claims), TokenCheck::kMalformed);
  EXPECT_EQ(
      VerifyToken(SignToken({9, 2000, false}, "new"), std::vector<std::string>{}, 1000, &claims),
      TokenCheck::kBadSignature);
}

// Found by fuzz/token_fuzz.cc: "rp1.<the signature of "rp1">" has a payload shorter than its
// prefix, and the claims parser cut it past its end (std::out_of_range on an I/O thread) once the
// signature matched. Only the secret's holder can make one, but it must be refused, not thrown.
TEST(Token, APayloadOfOnlyThePrefixIsMalformed) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  HMAC(EVP_sha256(), "secret", 6, reinterpret_cast<const unsigned char*>("rp1"), 3, digest,
       &length);
  std::string token = "rp1.";
  for (unsigned int i = 0; i < length; ++i) {
    token += "0123456789abcdef"[digest[i] >> 4];
    token += "0123456789abcdef"[digest[i] & 15];
  }
  TokenClaims claims;
  EXPECT_EQ(VerifyToken(token, "secret", 1000, &claims), TokenCheck::kMalformed);
  EXPECT_EQ(VerifyToken(token, std::vector<std::string>{"secret"}, 1000, &claims),
            TokenCheck::kMalformed);
}

TEST(Token, ParsesSecretLists) {
  EXPECT_EQ(ParseTokenSecrets("only"), std::vector<std::string>{"only"});
  EXPECT_EQ(ParseTokenSecrets("new, old ,older"),
            (std::vector<std::string>{"new", "old", "older"}));
  EXPECT_THROW(ParseTokenSecrets(""), std::invalid_argument);
  EXPECT_THROW(ParseTokenSecrets("new,"), std::invalid_argument);
  EXPECT_THROW(ParseTokenSecrets("new,,old"), std::invalid_argument);
  EXPECT_THROW(ParseTokenSecrets(" "), std::invalid_argument);
}

}  // namespace
}  // namespace redpacket::http
