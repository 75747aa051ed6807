// Who makes a request: the bearer token's user (and whether it is an admin), or with --dev the
// X-User-Id header; and why a credential that is sent is refused (a 401). Pure functions of the
// request, the secrets and the time; thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "domain/types.h"
#include "http/transport/request.h"

namespace redpacket::http {

struct Caller {
  domain::UserId user_id = 0;
  bool admin = false;
};

struct CallerCheck {
  std::optional<Caller> caller;               // none: no credential was sent
  std::optional<std::string_view> rejection;  // a credential was sent and is not valid: why
};

// The caller of `request`: its Authorization bearer token, checked against `token_secrets` (any
// one of them) and `now_unix_s`; with `dev` and no Authorization header, its X-User-Id. A
// credential that is sent must be valid, even an empty one: it is never silently replaced by
// X-User-Id or by no caller at all.
CallerCheck IdentifyCaller(const Request& request, const std::vector<std::string>& token_secrets,
                           bool dev, std::int64_t now_unix_s);

}  // namespace redpacket::http
