// IdentifyCaller: the bearer token (token.h) or --dev's X-User-Id.
#include "http/access/caller.h"

#include "http/access/token.h"
#include "http/codec/request_fields.h"

namespace redpacket::http {

CallerCheck IdentifyCaller(const Request& request, const std::vector<std::string>& token_secrets,
                           bool dev, std::int64_t now_unix_s) {
  if (request.has_authorization) {
    constexpr std::string_view kBearer = "Bearer ";
    const std::string_view authorization = request.authorization;
    if (authorization.size() <= kBearer.size() || !authorization.starts_with(kBearer)) {
      return {.rejection = "Authorization must be 'Bearer <token>'"};
    }
    TokenClaims claims;
    switch (VerifyToken(authorization.substr(kBearer.size()), token_secrets, now_unix_s, &claims)) {
      case TokenCheck::kValid:
        return {.caller = Caller{claims.user_id, claims.admin}};
      case TokenCheck::kExpired:
        return {.rejection = "the token has expired"};
      case TokenCheck::kMalformed:
      case TokenCheck::kBadSignature:
        return {.rejection = "the token is not valid"};
    }
  }
  if (dev && !request.user_id_header.empty()) {
    std::int64_t user_id = 0;
    if (!ParsePositive(request.user_id_header, domain::kMaxUserId, &user_id)) {
      return {.rejection = "X-User-Id must be a positive integer below 2^53"};
    }
    return {.caller = Caller{user_id, false}};
  }
  return {};
}

}  // namespace redpacket::http
