// The Lease conformance suite on RedisLease over the real cluster: each contender is its own
// RedisLease (own client and I/O thread) on one lease name, as two API servers would be; expiry
// is Redis' own PX, so Elapse() really waits. Blocking test code.
#include <array>
#include <atomic>
#include <chrono>
#include <memory>
#include <random>
#include <string>
#include <thread>

#include "../lease/lease_conformance.h"
#include "lease/redis/redis_lease.h"
#include "redis_test_cluster.h"

namespace redpacket::lease {
namespace {

// A lease name no earlier run used, so tests against a kept cluster do not meet old keys.
std::string FreshLeaseName() {
  static std::atomic<int> next{0};
  static const std::string run = std::to_string(std::random_device{}());
  return "test:" + run + ":" + std::to_string(next++);
}

class RedisLeaseSetup {
 public:
  static constexpr std::chrono::milliseconds kShortTtl{300};

  RedisLeaseSetup() {
    const std::string name = FreshLeaseName();
    for (auto& contender : contenders_) {
      contender = std::make_unique<RedisLease>(redis_test::RedisClusterNodes(), name);
    }
  }
  Lease& Contender(int server) { return *contenders_.at(server); }
  void Elapse(std::chrono::milliseconds duration) { std::this_thread::sleep_for(duration); }

 private:
  std::array<std::unique_ptr<RedisLease>, 2> contenders_;
};

INSTANTIATE_TYPED_TEST_SUITE_P(Redis, LeaseConformance, RedisLeaseSetup);

TEST(RedisLease, KeysShareTheLeaseSlot) {
  RedisLease lease(redis_test::RedisClusterNodes(), "sweeper");
  EXPECT_EQ(lease.key(), "{rp:lease}:sweeper");
  EXPECT_EQ(lease.token_key(), "{rp:lease}:sweeper:token");
}

}  // namespace
}  // namespace redpacket::lease
