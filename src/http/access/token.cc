// HMAC-SHA256 bearer tokens (OpenSSL).
#include "http/access/token.h"

#include <fmt/format.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <charconv>
#include <stdexcept>

namespace redpacket::http {
namespace {

std::string Signature(std::string_view payload, std::string_view secret) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(payload.data()), payload.size(), digest, &length);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex(length * 2, '0');
  for (unsigned int i = 0; i < length; ++i) {
    hex[2 * i] = kHex[digest[i] >> 4];
    hex[2 * i + 1] = kHex[digest[i] & 15];
  }
  return hex;
}

bool ParseInt(std::string_view text, std::int64_t* value) {
  if (text.empty() || text.size() > 18) return false;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), *value);
  return error == std::errc() && end == text.data() + text.size();
}

// The claims of a token whose signature is already checked.
TokenCheck ParseClaims(std::string_view payload, std::int64_t now_unix_s, TokenClaims* claims) {
  // Signed, so well-formed unless the secret signed garbage; parse defensively all the same.
  std::string_view rest = payload.substr(4);
  std::string_view parts[3];
  for (int i = 0; i < 3; ++i) {
    const auto dot = rest.find('.');
    parts[i] = rest.substr(0, dot);
    rest = dot == std::string_view::npos ? std::string_view() : rest.substr(dot + 1);
  }
  TokenClaims parsed;
  if (!ParseInt(parts[0], &parsed.user_id) || !ParseInt(parts[1], &parsed.expires_unix_s) ||
      (parts[2] != "0" && parts[2] != "1") || parsed.user_id < 1 ||
      parsed.user_id > domain::kMaxUserId) {
    return TokenCheck::kMalformed;
  }
  parsed.admin = parts[2] == "1";
  if (parsed.expires_unix_s <= now_unix_s) return TokenCheck::kExpired;
  *claims = parsed;
  return TokenCheck::kValid;
}

bool SignedBy(std::string_view payload, std::string_view signature, std::string_view secret) {
  const std::string expected = Signature(payload, secret);
  return signature.size() == expected.size() &&
         CRYPTO_memcmp(signature.data(), expected.data(), expected.size()) == 0;
}

bool SplitToken(std::string_view token, std::string_view* payload, std::string_view* signature) {
  const auto last_dot = token.rfind('.');
  // The payload is "rp1." and more: "rp1.<sig>" has none (ParseClaims would cut past its end).
  if (last_dot == std::string_view::npos || last_dot < 4 || token.substr(0, 4) != "rp1.")
    return false;
  *payload = token.substr(0, last_dot);
  *signature = token.substr(last_dot + 1);
  return true;
}

}  // namespace

std::string SignToken(const TokenClaims& claims, std::string_view secret) {
  const std::string payload =
      fmt::format("rp1.{}.{}.{}", claims.user_id, claims.expires_unix_s, claims.admin ? 1 : 0);
  return payload + "." + Signature(payload, secret);
}

TokenCheck VerifyToken(std::string_view token, std::string_view secret, std::int64_t now_unix_s,
                       TokenClaims* claims) {
  std::string_view payload, signature;
  if (!SplitToken(token, &payload, &signature)) return TokenCheck::kMalformed;
  if (!SignedBy(payload, signature, secret)) return TokenCheck::kBadSignature;
  return ParseClaims(payload, now_unix_s, claims);
}

TokenCheck VerifyToken(std::string_view token, const std::vector<std::string>& secrets,
                       std::int64_t now_unix_s, TokenClaims* claims) {
  std::string_view payload, signature;
  if (!SplitToken(token, &payload, &signature)) return TokenCheck::kMalformed;
  // Newest first: during a rotation most tokens are already signed with it.
  for (const auto& secret : secrets) {
    if (SignedBy(payload, signature, secret)) return ParseClaims(payload, now_unix_s, claims);
  }
  return TokenCheck::kBadSignature;
}

std::vector<std::string> ParseTokenSecrets(std::string_view list) {
  std::vector<std::string> secrets;
  while (true) {
    const auto comma = list.find(',');
    std::string_view entry = list.substr(0, comma);
    while (!entry.empty() && entry.front() == ' ') entry.remove_prefix(1);
    while (!entry.empty() && entry.back() == ' ') entry.remove_suffix(1);
    if (entry.empty()) throw std::invalid_argument("token_secret: empty secret in the list");
    secrets.emplace_back(entry);
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return secrets;
}

}  // namespace redpacket::http
