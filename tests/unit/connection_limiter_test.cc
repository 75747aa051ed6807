// ConnectionLimiter: the total cap, the per-address cap, places given back; AddressKey.
#include "http/transport/connection_limiter.h"

#include <gtest/gtest.h>

namespace redpacket::http {
namespace {

using Verdict = ConnectionLimiter::Verdict;
namespace ip = boost::asio::ip;

TEST(ConnectionLimiter, CapsTheTotalAndGivesPlacesBack) {
  ConnectionLimiter limiter(3, 0);
  for (std::uint64_t address = 1; address <= 3; ++address)
    EXPECT_EQ(limiter.TryAdmit(address), Verdict::kAdmitted);
  EXPECT_EQ(limiter.TryAdmit(4), Verdict::kServerFull);
  EXPECT_EQ(limiter.TryAdmit(4), Verdict::kServerFull);  // a refusal takes no place
  limiter.Release(2);
  EXPECT_EQ(limiter.TryAdmit(4), Verdict::kAdmitted);
}

TEST(ConnectionLimiter, CapsEachAddressApart) {
  ConnectionLimiter limiter(0, 2);
  EXPECT_EQ(limiter.TryAdmit(1), Verdict::kAdmitted);
  EXPECT_EQ(limiter.TryAdmit(1), Verdict::kAdmitted);
  EXPECT_EQ(limiter.TryAdmit(1), Verdict::kAddressFull);
  EXPECT_EQ(limiter.TryAdmit(2), Verdict::kAdmitted);
  limiter.Release(1);
  EXPECT_EQ(limiter.TryAdmit(1), Verdict::kAdmitted);
}

TEST(ConnectionLimiter, AnAddressRefusedDoesNotHoldATotalPlace) {
  ConnectionLimiter limiter(2, 1);
  EXPECT_EQ(limiter.TryAdmit(1), Verdict::kAdmitted);
  EXPECT_EQ(limiter.TryAdmit(1), Verdict::kAddressFull);
  EXPECT_EQ(limiter.TryAdmit(2), Verdict::kAdmitted);
  EXPECT_EQ(limiter.TryAdmit(3), Verdict::kServerFull);
}

TEST(AddressKey, IsExactForIpv4AndApartFromUserIds) {
  const std::uint64_t loopback = AddressKey(ip::make_address("127.0.0.1"));
  EXPECT_EQ(loopback, AddressKey(ip::make_address("::ffff:127.0.0.1")));  // IPv4-mapped
  EXPECT_NE(loopback, AddressKey(ip::make_address("127.0.0.2")));
  EXPECT_NE(AddressKey(ip::make_address("::1")), AddressKey(ip::make_address("::2")));
  for (const char* text : {"0.0.0.0", "255.255.255.255", "::1", "2001:db8::1"}) {
    EXPECT_GE(AddressKey(ip::make_address(text)), std::uint64_t{1} << 63)
        << text;  // user ids < 2^53
  }
}

}  // namespace
}  // namespace redpacket::http
