// The Lease conformance suite on MemoryLease, with a fake clock: expiry needs no real waiting.
#include "lease/memory/memory_lease.h"

#include <atomic>
#include <chrono>

#include "../lease/lease_conformance.h"

namespace redpacket::lease {
namespace {

// One MemoryLease stands for the shared store: every contender (server) calls the same object.
class MemoryLeaseSetup {
 public:
  static constexpr std::chrono::milliseconds kShortTtl{1000};

  Lease& Contender(int /*server*/) { return lease_; }
  void Elapse(std::chrono::milliseconds duration) { elapsed_ += duration.count(); }

 private:
  std::atomic<std::int64_t> elapsed_{0};  // milliseconds since construction
  const std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  MemoryLease lease_{[this] { return start_ + std::chrono::milliseconds(elapsed_.load()); }};
};

INSTANTIATE_TYPED_TEST_SUITE_P(Memory, LeaseConformance, MemoryLeaseSetup);

TEST(MemoryLease, ExpiresExactlyAtTheTtlOnItsClock) {
  std::chrono::steady_clock::time_point now{};
  MemoryLease lease([&] { return now; });
  auto first = lease.TryAcquire("a", std::chrono::milliseconds(100));
  ASSERT_TRUE(first.ok() && *first);
  now += std::chrono::milliseconds(99);
  EXPECT_EQ(*lease.TryAcquire("b", std::chrono::milliseconds(100)), std::nullopt);
  now += std::chrono::milliseconds(1);
  auto second = lease.TryAcquire("b", std::chrono::milliseconds(100));
  ASSERT_TRUE(second.ok() && *second);
  EXPECT_EQ(**second, **first + 1);
}

}  // namespace
}  // namespace redpacket::lease
