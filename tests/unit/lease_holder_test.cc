// LeaseHolder, the sweeper lease of a cluster-mode server: it renews on its own thread every
// third of the lease's ttl, whether or not anything sweeps, so one holder keeps the lease for as
// long as it runs; Stop() releases it, and another server's holder takes it at its next renewal
// with a larger fencing token. On the memory lease (the Redis lease keeps the same contract:
// tests/lease/lease_conformance.h).
#include "app/lease_work.h"

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <thread>

#include "lease/memory/memory_lease.h"

namespace redpacket::app {
namespace {

using namespace std::chrono_literals;

// A lease shared by two servers' holders (each Lease object is one server's view of it).
class SharedLease final : public lease::Lease {
 public:
  explicit SharedLease(lease::Lease& shared) : shared_(shared) {}
  domain::Result<std::optional<std::uint64_t>> TryAcquire(std::string_view holder,
                                                          std::chrono::milliseconds ttl) override {
    return shared_.TryAcquire(holder, ttl);
  }
  domain::Status Release(std::string_view holder) override { return shared_.Release(holder); }

 private:
  lease::Lease& shared_;
};

bool WaitUntil(const std::function<bool()>& done, std::chrono::milliseconds timeout = 3s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

TEST(LeaseHolder, OneHolderKeepsTheLeaseWhileItRunsAndHandsItOverOnStop) {
  lease::MemoryLease lease;
  constexpr auto kTtl = 600ms;  // renewed every 200 ms
  LeaseHolder a(std::make_unique<SharedLease>(lease), "server-a", kTtl);
  LeaseHolder b(std::make_unique<SharedLease>(lease), "server-b", kTtl);
  a.Start();
  ASSERT_TRUE(WaitUntil([&] { return a.token() != 0; }));
  b.Start();
  const std::uint64_t first = a.token();

  // Five times the ttl with nothing else running: a keeps it, b never gets it.
  const auto until = std::chrono::steady_clock::now() + 5 * kTtl;
  while (std::chrono::steady_clock::now() < until) {
    ASSERT_EQ(a.token(), first);
    ASSERT_EQ(b.token(), 0u);
    std::this_thread::sleep_for(20ms);
  }

  a.Stop();  // releases: b takes it at its next renewal, well before a's ttl would have run out
  EXPECT_EQ(a.token(), 0u);
  ASSERT_TRUE(WaitUntil([&] { return b.token() != 0; }, kTtl));
  EXPECT_GT(b.token(), first);  // fenced: whatever a still had in flight is refused
  b.Stop();
}

}  // namespace
}  // namespace redpacket::app
