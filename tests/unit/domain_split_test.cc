// The share split (invariant 6, docs/invariants.md) and packet validation.
#include <chrono>
#include <numeric>

#include <gtest/gtest.h>

#include "domain/packet.h"

namespace redpacket::domain {
namespace {

TEST(SplitLucky, PropertyOverManyRandomPackets) {
  // 100,000 random packets: the sum is exact, every share >= 1, the count is right.
  SeededRandom random(20261125);
  for (int i = 0; i < 100000; ++i) {
    const std::int64_t count = random.Between(1, 100);
    const Cents total = random.Between(count, 20000);
    const auto shares = SplitLucky(total, count, random);
    ASSERT_EQ(static_cast<std::int64_t>(shares.size()), count);
    ASSERT_EQ(std::accumulate(shares.begin(), shares.end(), Cents{0}), total) << "packet " << i;
    for (Cents share : shares) ASSERT_GE(share, 1) << "packet " << i;
  }
}

TEST(SplitLucky, MeanShareAtEveryGrabPositionIsTotalOverCount) {
  // Shuffled at creation, so no grab position is luckier on average.
  SeededRandom random(7);
  constexpr std::int64_t kCount = 10;
  constexpr Cents kTotal = 10000;
  constexpr int kPackets = 20000;
  std::vector<double> sums(kCount, 0);
  for (int i = 0; i < kPackets; ++i) {
    const auto shares = SplitLucky(kTotal, kCount, random);
    for (std::size_t position = 0; position < shares.size(); ++position) sums[position] += static_cast<double>(shares[position]);
  }
  for (std::size_t position = 0; position < sums.size(); ++position) {
    EXPECT_NEAR(sums[position] / kPackets, 1000.0, 25.0) << "position " << position;
  }
}

TEST(SplitLucky, NoShareStarvesTheOthers) {
  // The cap: a draw leaves every later share at least 1 cent, so no share exceeds
  // total - (count - 1).
  SeededRandom random(99);
  for (int i = 0; i < 1000; ++i) {
    const auto shares = SplitLucky(500, 50, random);
    for (Cents share : shares) EXPECT_LE(share, 500 - 49);
  }
}

TEST(SplitLucky, EdgeCases) {
  SeededRandom random(1);
  EXPECT_EQ(SplitLucky(1, 1, random), std::vector<Cents>{1});
  EXPECT_EQ(SplitLucky(5, 5, random), std::vector<Cents>(5, 1));  // every share exactly 1 cent
  const auto shares = SplitLucky(7, 1, random);
  EXPECT_EQ(shares, std::vector<Cents>{7});
}

TEST(SplitLucky, RedPacketRainOfAMillionSharesIsFast) {
  const auto start = std::chrono::steady_clock::now();
  const auto shares = SplitLucky(300'000'000, 1'000'000, ThreadCryptoRandom());
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(std::accumulate(shares.begin(), shares.end(), Cents{0}), 300'000'000);
#ifdef __SANITIZE_ADDRESS__
  constexpr auto kLimit = std::chrono::milliseconds(2000);  // ASan makes it ~4x slower
#else
  constexpr auto kLimit = std::chrono::milliseconds(500);
#endif
  EXPECT_LT(elapsed, kLimit);
  std::printf("1,000,000 shares split in %.1f ms\n", std::chrono::duration<double, std::milli>(elapsed).count());
}

TEST(SplitEqual, SplitsEvenly) {
  EXPECT_EQ(SplitEqual(1000, 4), std::vector<Cents>(4, 250));
}

TEST(CryptoRandom, BetweenCoversTheRange) {
  CryptoRandom random;
  std::vector<int> seen(6, 0);
  for (int i = 0; i < 6000; ++i) ++seen[static_cast<std::size_t>(random.Between(0, 5))];
  for (int count : seen) EXPECT_GT(count, 800);
}

PacketSpec Valid() {
  PacketSpec spec;
  spec.sender_id = 1;
  spec.total_cents = 1000;
  spec.count = 10;
  return spec;
}

TEST(ValidatePacketSpec, AcceptsAValidSpec) { EXPECT_TRUE(ValidatePacketSpec(Valid(), Limits{})); }

TEST(ValidatePacketSpec, RejectsEachBrokenRule) {
  const Limits limits;
  auto rejects = [&](auto mutate) {
    PacketSpec spec = Valid();
    mutate(spec);
    Status status = ValidatePacketSpec(spec, limits);
    return !status && status.error().code == ErrorCode::kBadRequest;
  };
  EXPECT_TRUE(rejects([](PacketSpec& s) { s.count = 0; }));
  EXPECT_TRUE(rejects([](PacketSpec& s) { s.count = 101; }));
  EXPECT_TRUE(rejects([](PacketSpec& s) { s.total_cents = 0; }));
  EXPECT_TRUE(rejects([](PacketSpec& s) { s.total_cents = 20001; }));
  EXPECT_TRUE(rejects([](PacketSpec& s) { s.total_cents = 5; }));  // count 10 > 5 cents
  EXPECT_TRUE(rejects([](PacketSpec& s) { s.kind = PacketKind::kEqual; s.total_cents = 1001; }));
  EXPECT_TRUE(rejects([](PacketSpec& s) { s.expires_in_s = 59; }));
  EXPECT_TRUE(rejects([](PacketSpec& s) { s.expires_in_s = 86401; }));
  EXPECT_TRUE(rejects([](PacketSpec& s) { s.receiver_id = 7; }));  // exclusive needs count 1
  EXPECT_TRUE(rejects([](PacketSpec& s) { s.greeting = std::string(257, 'x'); }));
  EXPECT_FALSE(rejects([](PacketSpec& s) { s.receiver_id = 7; s.count = 1; }));
}

TEST(Types, TimeFormatsAsRfc3339Utc) {
  EXPECT_EQ(FormatTime(FromUnixMillis(0)), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(FormatTime(FromUnixMillis(1764091746123)), "2025-11-25T17:29:06.123Z");
}

}  // namespace
}  // namespace redpacket::domain
