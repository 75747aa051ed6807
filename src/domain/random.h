// Sources of randomness. Shares are drawn from a cryptographic RNG (OpenSSL) so nobody can
// predict a packet's split; tests use a seeded generator so failures reproduce.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace redpacket::domain {

// Not thread-safe: use one instance per thread (see ThreadCryptoRandom()).
class RandomSource {
 public:
  virtual ~RandomSource() = default;
  virtual std::uint64_t Next64() = 0;
  // Uniform in [0, bound), bound > 0, without modulo bias (rejection sampling).
  std::uint64_t Below(std::uint64_t bound);
  // Uniform in [low, high], low <= high.
  std::int64_t Between(std::int64_t low, std::int64_t high);
};

// OpenSSL RAND_bytes, buffered so a 1,000,000-share packet costs a few hundred calls.
class CryptoRandom final : public RandomSource {
 public:
  std::uint64_t Next64() override;

 private:
  std::array<std::uint64_t, 512> buffer_{};
  std::size_t next_ = buffer_.size();
};

// Deterministic (splitmix64); for tests and benchmarks only.
class SeededRandom final : public RandomSource {
 public:
  explicit SeededRandom(std::uint64_t seed) : state_(seed) {}
  std::uint64_t Next64() override;

 private:
  std::uint64_t state_;
};

// The calling thread's own CryptoRandom.
RandomSource& ThreadCryptoRandom();

}  // namespace redpacket::domain
