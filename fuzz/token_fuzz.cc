// libFuzzer target: arbitrary bytes as the credential of "Authorization: Bearer <token>".
// The first byte picks how the rest is used: as the token as sent (odd: the fuzzer cannot forge
// an HMAC, so nothing verifies), or as a payload the harness signs with one of the secrets (even:
// reaches the claims parser with signed garbage, as a leaked or misused secret would).
// Properties: a valid token's claims are in range and not expired, re-signing them gives a token
// that verifies to the same claims, and the single-secret and rotation-list checks agree.
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_check.h"
#include "http/access/token.h"

namespace {

using namespace redpacket;
using http::TokenCheck;
using http::TokenClaims;

constexpr std::int64_t kNow = 1'795'000'000;  // 2026-11-18, fixed so runs repeat

const std::vector<std::string>& Secrets() {
  static const std::vector<std::string> secrets{"fuzz-secret-new", "fuzz-secret-old"};
  return secrets;
}

std::string Hmac(std::string_view payload, std::string_view secret) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(payload.data()), payload.size(), digest, &length);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  for (unsigned int i = 0; i < length; ++i) {
    hex += kHex[digest[i] >> 4];
    hex += kHex[digest[i] & 15];
  }
  return hex;
}

void CheckToken(std::string_view token) {
  TokenClaims claims;
  const TokenCheck check = http::VerifyToken(token, Secrets(), kNow, &claims);
  // The list check is the single-secret check of the first secret that signed it.
  TokenCheck single = TokenCheck::kBadSignature;
  TokenClaims single_claims;
  for (const auto& secret : Secrets()) {
    single = http::VerifyToken(token, secret, kNow, &single_claims);
    if (single != TokenCheck::kBadSignature) break;
  }
  FUZZ_CHECK(single == check);
  if (check != TokenCheck::kValid) return;
  FUZZ_CHECK(single_claims.user_id == claims.user_id && single_claims.admin == claims.admin &&
             single_claims.expires_unix_s == claims.expires_unix_s);
  FUZZ_CHECK(claims.user_id >= 1 && claims.user_id <= domain::kMaxUserId);
  FUZZ_CHECK(claims.expires_unix_s > kNow);
  for (const auto& secret : Secrets()) {
    const std::string resigned = http::SignToken(claims, secret);
    TokenClaims again;
    FUZZ_CHECK(http::VerifyToken(resigned, Secrets(), kNow, &again) == TokenCheck::kValid);
    FUZZ_CHECK(again.user_id == claims.user_id && again.admin == claims.admin &&
               again.expires_unix_s == claims.expires_unix_s);
    // One second after its expiry it is refused, whatever else is true.
    FUZZ_CHECK(http::VerifyToken(resigned, Secrets(), claims.expires_unix_s, &again) ==
               TokenCheck::kExpired);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] % 2 == 1) {
    CheckToken(rest);
  } else {
    const std::string& secret = Secrets()[(data[0] / 2) % Secrets().size()];
    CheckToken(std::string(rest) + "." + Hmac(rest, secret));
  }
  return 0;
}
