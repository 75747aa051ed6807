// Bloom filter sizing and hashing (see bloom.h).
#include "store/redis/bloom.h"

#include <cmath>
#include <stdexcept>
#include <string>

namespace redpacket::store::redis {
namespace {

std::uint64_t SplitMix64(std::uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

constexpr std::uint64_t kMaxBits = std::uint64_t{1} << 32;

}  // namespace

BloomParameters SizeBloomFilter(std::uint64_t capacity, double false_positive_rate) {
  if (capacity == 0) throw std::invalid_argument("Bloom filter capacity must be positive");
  if (!(false_positive_rate > 0.0 && false_positive_rate < 1.0)) {
    throw std::invalid_argument("Bloom filter false-positive rate must be in (0, 1)");
  }
  const double ln2 = std::log(2.0);
  const double bits =
      std::ceil(-static_cast<double>(capacity) * std::log(false_positive_rate) / (ln2 * ln2));
  if (bits > static_cast<double>(kMaxBits)) {
    throw std::invalid_argument("Bloom filter of " + std::to_string(capacity) +
                                " ids at that rate needs more than 2^32 bits (a Redis string's "
                                "limit): raise the rate or lower the capacity");
  }
  BloomParameters parameters;
  parameters.bits = static_cast<std::uint64_t>(bits);
  const double hashes = std::round(bits / static_cast<double>(capacity) * ln2);
  parameters.hashes = hashes < 1.0 ? 1 : static_cast<int>(hashes);
  return parameters;
}

double BloomFalsePositiveRate(const BloomParameters& parameters, std::uint64_t items) {
  const double k = parameters.hashes;
  const double fill =
      1.0 - std::exp(-k * static_cast<double>(items) / static_cast<double>(parameters.bits));
  return std::pow(fill, k);
}

std::vector<std::uint64_t> BloomBitOffsets(domain::PacketId packet_id,
                                           const BloomParameters& parameters) {
  const std::uint64_t h1 = SplitMix64(static_cast<std::uint64_t>(packet_id));
  // Odd, so the k probes of one id do not collapse onto a short cycle when m is even.
  const std::uint64_t h2 = SplitMix64(h1) | 1;
  std::vector<std::uint64_t> offsets;
  offsets.reserve(static_cast<std::size_t>(parameters.hashes));
  for (int i = 0; i < parameters.hashes; ++i) {
    offsets.push_back((h1 + static_cast<std::uint64_t>(i) * h2) % parameters.bits);
  }
  return offsets;
}

}  // namespace redpacket::store::redis
