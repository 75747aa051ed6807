// Bearer tokens: "rp1.<user_id>.<expires_unix_s>.<admin 0|1>.<hex HMAC-SHA256 of the part before>"
// signed with the configured token_secret. Rotation: the secret is a list, tokens are signed with
// the first and accepted under any. Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "domain/types.h"

namespace redpacket::http {

struct TokenClaims {
  domain::UserId user_id = 0;
  std::int64_t expires_unix_s = 0;
  bool admin = false;
};

std::string SignToken(const TokenClaims& claims, std::string_view secret);

enum class TokenCheck { kValid, kMalformed, kBadSignature, kExpired };

// Verifies the signature (constant-time compare) and the expiry against `now_unix_s`.
TokenCheck VerifyToken(std::string_view token, std::string_view secret, std::int64_t now_unix_s,
                       TokenClaims* claims);
// The same against every secret of a rotation list (valid when any one signed it).
TokenCheck VerifyToken(std::string_view token, const std::vector<std::string>& secrets,
                       std::int64_t now_unix_s, TokenClaims* claims);

// "new,old" -> {"new", "old"}: split at commas, spaces around each trimmed. Throws
// std::invalid_argument on an empty entry ("a,,b", "a,") or an empty list.
std::vector<std::string> ParseTokenSecrets(std::string_view list);

}  // namespace redpacket::http
