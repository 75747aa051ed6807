// A Lua script and its SHA1, sent as EVALSHA with a fallback to EVAL on NOSCRIPT (see
// ClusterClient::Eval). Immutable after construction: one instance may serve every I/O thread.
#pragma once

#include <string>
#include <string_view>

namespace redpacket::net::redis {

class Script {
 public:
  explicit Script(std::string source);

  const std::string& source() const { return source_; }
  const std::string& sha1() const { return sha1_; }  // 40 lowercase hex digits, as Redis has it

 private:
  std::string source_;
  std::string sha1_;
};

// Lowercase hex SHA1 of the bytes (OpenSSL).
std::string Sha1Hex(std::string_view data);

}  // namespace redpacket::net::redis
