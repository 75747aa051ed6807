// The Lease contract as a type-parameterized suite, instantiated once per implementation
// (tests/unit/memory_lease_test.cc, tests/redis/lease_redistest.cc). A setup type gives:
//   a default constructor that makes a lease no other test uses
//   Lease& Contender(int i)  the lease as server i sees it (same name, its own connection)
//   void Elapse(std::chrono::milliseconds)  lets that much lease time pass
//   static constexpr std::chrono::milliseconds kShortTtl  a ttl Elapse() can outlive cheaply
// Blocking test code.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "lease/lease.h"

namespace redpacket::lease {

using namespace std::chrono_literals;

template <class LeaseSetup>
class LeaseConformance : public ::testing::Test {
 protected:
  LeaseSetup setup_;

  std::optional<std::uint64_t> Acquire(int contender, const std::string& holder,
                                       std::chrono::milliseconds ttl) {
    auto result = setup_.Contender(contender).TryAcquire(holder, ttl);
    EXPECT_TRUE(result.ok()) << result.error().message;
    return result.ok() ? *result : std::nullopt;
  }
};

TYPED_TEST_SUITE_P(LeaseConformance);

TYPED_TEST_P(LeaseConformance, AFreeLeaseIsAcquiredAndRenewalKeepsTheToken) {
  const auto token = this->Acquire(0, "server-a", 10s);
  ASSERT_TRUE(token);
  EXPECT_GT(*token, 0u);
  EXPECT_EQ(this->Acquire(0, "server-a", 10s), token) << "a renewal keeps the token";
  EXPECT_EQ(this->Acquire(1, "server-a", 10s), token) << "whichever connection renews";
}

TYPED_TEST_P(LeaseConformance, AHeldLeaseIsNotGivenToAnother) {
  ASSERT_TRUE(this->Acquire(0, "server-a", 10s));
  EXPECT_EQ(this->Acquire(1, "server-b", 10s), std::nullopt);
  EXPECT_EQ(this->Acquire(0, "server-b", 10s), std::nullopt);
}

TYPED_TEST_P(LeaseConformance, AnExpiredLeaseIsTakenOverWithAHigherToken) {
  const auto first = this->Acquire(0, "server-a", TypeParam::kShortTtl);
  ASSERT_TRUE(first);
  EXPECT_EQ(this->Acquire(1, "server-b", 10s), std::nullopt);
  this->setup_.Elapse(TypeParam::kShortTtl * 2);
  const auto second = this->Acquire(1, "server-b", 10s);
  ASSERT_TRUE(second) << "the lease expired: server-b takes it";
  EXPECT_GT(*second, *first);
  EXPECT_EQ(this->Acquire(0, "server-a", 10s), std::nullopt) << "server-a lost it";
}

TYPED_TEST_P(LeaseConformance, RenewalExtendsTheLease) {
  const auto token = this->Acquire(0, "server-a", TypeParam::kShortTtl * 2);
  ASSERT_TRUE(token);
  this->setup_.Elapse(TypeParam::kShortTtl);
  ASSERT_EQ(this->Acquire(0, "server-a", TypeParam::kShortTtl * 4), token);
  this->setup_.Elapse(TypeParam::kShortTtl * 2);  // past the first ttl, within the renewed one
  EXPECT_EQ(this->Acquire(1, "server-b", 10s), std::nullopt);
}

TYPED_TEST_P(LeaseConformance, TokensStrictlyIncreaseWithEachNewHolder) {
  std::uint64_t last = 0;
  for (int round = 0; round < 10; ++round) {
    const std::string holder = "server-" + std::to_string(round % 3);
    const auto token = this->Acquire(round % 2, holder, 10s);
    ASSERT_TRUE(token) << round;
    EXPECT_GT(*token, last) << round;
    last = *token;
    ASSERT_TRUE(this->setup_.Contender(round % 2).Release(holder).ok());
  }
  // The same holder coming back after a release is a new holding: a new token.
  const auto again = this->Acquire(0, "server-0", 10s);
  ASSERT_TRUE(again);
  EXPECT_GT(*again, last);
}

TYPED_TEST_P(LeaseConformance, OnlyTheHolderReleases) {
  ASSERT_TRUE(this->Acquire(0, "server-a", 10s));
  const Status foreign = this->setup_.Contender(1).Release("server-b");
  ASSERT_FALSE(foreign.ok());
  EXPECT_EQ(foreign.error().code, domain::ErrorCode::kConflict);
  EXPECT_EQ(this->Acquire(1, "server-b", 10s), std::nullopt) << "still held by server-a";
  ASSERT_TRUE(this->setup_.Contender(0).Release("server-a").ok());
  EXPECT_TRUE(this->Acquire(1, "server-b", 10s)) << "released: free for anyone";
  EXPECT_TRUE(this->setup_.Contender(0).Release("server-c").error().code ==
              domain::ErrorCode::kConflict);
}

TYPED_TEST_P(LeaseConformance, ReleasingAFreeLeaseIsANoOp) {
  EXPECT_TRUE(this->setup_.Contender(0).Release("server-a").ok());
  const auto token = this->Acquire(0, "server-a", TypeParam::kShortTtl);
  ASSERT_TRUE(token);
  this->setup_.Elapse(TypeParam::kShortTtl * 2);
  EXPECT_TRUE(this->setup_.Contender(0).Release("server-a").ok()) << "expired: nothing held";
}

TYPED_TEST_P(LeaseConformance, RejectsAnEmptyHolderAndANonPositiveTtl) {
  auto empty = this->setup_.Contender(0).TryAcquire("", 10s);
  ASSERT_FALSE(empty.ok());
  EXPECT_EQ(empty.error().code, domain::ErrorCode::kBadRequest);
  auto zero = this->setup_.Contender(0).TryAcquire("server-a", 0ms);
  ASSERT_FALSE(zero.ok());
  EXPECT_EQ(zero.error().code, domain::ErrorCode::kBadRequest);
  EXPECT_FALSE(this->setup_.Contender(0).Release("").ok());
}

// Two servers racing from two threads: at most one holds at any moment, and the tokens, in the
// order the holdings began, strictly increase.
TYPED_TEST_P(LeaseConformance, TwoContendersFromTwoThreadsNeverBothHold) {
  constexpr int kAttempts = 200;
  std::atomic<int> holding{0};
  std::atomic<int> overlaps{0};
  std::atomic<int> errors{0};
  std::mutex mutex;
  std::vector<std::uint64_t> tokens;  // appended while holding
  auto contend = [&](int contender) {
    const std::string holder = "server-" + std::to_string(contender);
    Lease& lease = this->setup_.Contender(contender);
    for (int attempt = 0; attempt < kAttempts; ++attempt) {
      auto token = lease.TryAcquire(holder, 10s);
      if (!token.ok()) {
        ++errors;
        continue;
      }
      if (!*token) continue;
      if (holding.fetch_add(1) != 0) ++overlaps;
      {
        std::lock_guard lock(mutex);
        tokens.push_back(**token);
      }
      std::this_thread::yield();
      holding.fetch_sub(1);
      // Released before the next holder's acquisition can succeed: `holding` is back to 0 first.
      if (!lease.Release(holder).ok()) ++errors;
    }
  };
  std::thread first(contend, 0);
  std::thread second(contend, 1);
  first.join();
  second.join();
  EXPECT_EQ(overlaps.load(), 0) << "both held the lease at once";
  EXPECT_EQ(errors.load(), 0);
  ASSERT_GE(tokens.size(), 2u);
  for (std::size_t i = 1; i < tokens.size(); ++i) {
    EXPECT_GT(tokens[i], tokens[i - 1]) << "holding " << i;
  }
}

REGISTER_TYPED_TEST_SUITE_P(LeaseConformance, AFreeLeaseIsAcquiredAndRenewalKeepsTheToken,
                            AHeldLeaseIsNotGivenToAnother,
                            AnExpiredLeaseIsTakenOverWithAHigherToken, RenewalExtendsTheLease,
                            TokensStrictlyIncreaseWithEachNewHolder, OnlyTheHolderReleases,
                            ReleasingAFreeLeaseIsANoOp, RejectsAnEmptyHolderAndANonPositiveTtl,
                            TwoContendersFromTwoThreadsNeverBothHold);

}  // namespace redpacket::lease
