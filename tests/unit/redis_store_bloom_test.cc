// The Bloom filter of the Redis store: sizing formulas, the documented default rate, and a
// measured false-positive rate on an in-memory bit array with the same hashing.
#include <gtest/gtest.h>

#include <set>
#include <stdexcept>
#include <vector>

#include "store/redis/bloom.h"

namespace redpacket::store::redis {
namespace {

TEST(RedisStoreBloom, DefaultSizingIsTheDocumentedOne) {
  const BloomParameters parameters = SizeBloomFilter(10'000'000, 0.001);
  EXPECT_EQ(parameters.bits, 143'775'876u);
  EXPECT_EQ(parameters.hashes, 10);
  EXPECT_NEAR(BloomFalsePositiveRate(parameters, 10'000'000), 0.001, 0.00001);
  EXPECT_NEAR(BloomFalsePositiveRate(parameters, 5'000'000), 0.0000048, 0.0000002);
  EXPECT_NEAR(BloomFalsePositiveRate(parameters, 20'000'000), 0.0572, 0.0002);
}

TEST(RedisStoreBloom, RejectsImpossibleSizes) {
  EXPECT_THROW(SizeBloomFilter(0, 0.01), std::invalid_argument);
  EXPECT_THROW(SizeBloomFilter(1000, 0.0), std::invalid_argument);
  EXPECT_THROW(SizeBloomFilter(1000, 1.0), std::invalid_argument);
  EXPECT_THROW(SizeBloomFilter(1'000'000'000, 1e-6), std::invalid_argument) << "> 2^32 bits";
  EXPECT_EQ(SizeBloomFilter(1, 0.5).hashes, 1);
}

TEST(RedisStoreBloom, OffsetsAreDeterministicDistinctAndInRange) {
  const BloomParameters parameters = SizeBloomFilter(1000, 0.01);
  for (domain::PacketId id : {std::int64_t{1}, std::int64_t{2}, std::int64_t{1} << 62}) {
    const auto offsets = BloomBitOffsets(id, parameters);
    EXPECT_EQ(offsets, BloomBitOffsets(id, parameters));
    ASSERT_EQ(offsets.size(), static_cast<std::size_t>(parameters.hashes));
    EXPECT_EQ(std::set<std::uint64_t>(offsets.begin(), offsets.end()).size(), offsets.size());
    for (auto offset : offsets) EXPECT_LT(offset, parameters.bits);
  }
  EXPECT_NE(BloomBitOffsets(1, parameters), BloomBitOffsets(2, parameters));
}

// Fills a filter to capacity with ids 1..n and probes ids it never saw: no false negative, and
// the false-positive rate is close to the formula's.
TEST(RedisStoreBloom, MeasuredFalsePositiveRateMatchesTheFormula) {
  constexpr std::uint64_t kCapacity = 200'000;
  const BloomParameters parameters = SizeBloomFilter(kCapacity, 0.01);
  std::vector<bool> bits(parameters.bits);
  for (domain::PacketId id = 1; id <= static_cast<domain::PacketId>(kCapacity); ++id) {
    for (auto offset : BloomBitOffsets(id, parameters)) bits[offset] = true;
  }
  auto maybe_present = [&](domain::PacketId id) {
    for (auto offset : BloomBitOffsets(id, parameters)) {
      if (!bits[offset]) return false;
    }
    return true;
  };
  for (domain::PacketId id = 1; id <= static_cast<domain::PacketId>(kCapacity); ++id) {
    ASSERT_TRUE(maybe_present(id)) << "false negative for " << id;
  }
  constexpr int kProbes = 200'000;
  int false_positives = 0;
  for (int i = 0; i < kProbes; ++i) {
    false_positives += maybe_present(domain::PacketId{1'000'000'000} + i) ? 1 : 0;
  }
  const double measured = static_cast<double>(false_positives) / kProbes;
  EXPECT_NEAR(measured, BloomFalsePositiveRate(parameters, kCapacity), 0.003) << measured;
}

}  // namespace
}  // namespace redpacket::store::redis
