// Script SHA1 through OpenSSL's EVP interface.
#include "net/redis/script.h"

#include <openssl/evp.h>

#include <stdexcept>

namespace redpacket::net::redis {

Script::Script(std::string source) : source_(std::move(source)), sha1_(Sha1Hex(source_)) {}

std::string Sha1Hex(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digest_size = 0;
  if (EVP_Digest(data.data(), data.size(), digest, &digest_size, EVP_sha1(), nullptr) != 1) {
    throw std::runtime_error("OpenSSL EVP_Digest(SHA1) failed");
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(std::size_t{digest_size} * 2);
  for (unsigned int i = 0; i < digest_size; ++i) {
    hex.push_back(kHex[digest[i] >> 4]);
    hex.push_back(kHex[digest[i] & 0xF]);
  }
  return hex;
}

}  // namespace redpacket::net::redis
