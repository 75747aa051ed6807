// Buffered OpenSSL randomness and an unbiased bounded draw.
#include "domain/random.h"

#include <openssl/rand.h>

#include <cstdlib>
#include <limits>

#include <spdlog/spdlog.h>

namespace redpacket::domain {

std::uint64_t RandomSource::Below(std::uint64_t bound) {
  // Reject the top partial range so every value in [0, bound) is equally likely.
  const std::uint64_t limit = std::numeric_limits<std::uint64_t>::max() -
                              std::numeric_limits<std::uint64_t>::max() % bound;
  std::uint64_t draw;
  do {
    draw = Next64();
  } while (draw >= limit);
  return draw % bound;
}

std::int64_t RandomSource::Between(std::int64_t low, std::int64_t high) {
  return low + static_cast<std::int64_t>(Below(static_cast<std::uint64_t>(high - low) + 1));
}

std::uint64_t CryptoRandom::Next64() {
  if (next_ == buffer_.size()) {
    if (RAND_bytes(reinterpret_cast<unsigned char*>(buffer_.data()),
                   static_cast<int>(sizeof(buffer_))) != 1) {
      // Should never happen: without a working CSPRNG no packet may be split.
      spdlog::critical("OpenSSL RAND_bytes failed");
      std::abort();
    }
    next_ = 0;
  }
  return buffer_[next_++];
}

std::uint64_t SeededRandom::Next64() {
  std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

RandomSource& ThreadCryptoRandom() {
  thread_local CryptoRandom random;
  return random;
}

}  // namespace redpacket::domain
