// Concurrent callers in-process (tests/support/api_fixture.h), on real threads, so ThreadSanitizer
// sees the API, the service, the memory store and the journal under contention: one user's grabs
// fired at once (half through the seed-compatible GET /grab) get one share between them, and
// creates raced against one balance never overdraw it. The 500-client stampede on one packet
// stays against the real binary (tests/e2e/stampede_e2etest.cc).
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <latch>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/api_fixture.h"

namespace redpacket::testing_support {
namespace {

constexpr std::int64_t kDeposit = 20000;
constexpr std::int64_t kFirstGrabber = 1000;

class ApiStampedeTest : public ApiFixture {
 protected:
  // Runs fn(0..n-1) on n threads that all start at once, and joins them.
  static void AllAtOnce(int n, const std::function<void(int)>& fn) {
    std::latch ready(n);
    std::vector<std::thread> threads;
    for (int i = 0; i < n; ++i) {
      threads.emplace_back([&, i] {
        ready.arrive_and_wait();
        fn(i);
      });
    }
    for (auto& thread : threads) thread.join();
  }
};

// Invariant 2 (docs/invariants.md) under retries: each user fires several grabs at once, half of
// them through the seed-compatible GET /grab. One share each; every other answer is a 409 with
// that share's amount.
TEST_F(ApiStampedeTest, ConcurrentRetriesByOneUserGetOneShare) {
  constexpr int kUsers = 40;
  constexpr int kTriesPerUser = 8;
  constexpr int kRequests = kUsers * kTriesPerUser;
  const std::int64_t sender = CreateFundedUser("sender", kDeposit);
  const std::string packet =
      CreatePacket(sender, R"({"total_cents":10000,"count":100,"kind":"lucky"})");

  std::vector<ApiReply> replies(kRequests);
  AllAtOnce(kRequests, [&](int i) {
    const std::int64_t user = kFirstGrabber + i / kTriesPerUser;
    replies[static_cast<std::size_t>(i)] =
        i % 2 == 0
            ? Call("POST", "/v1/packets/" + packet + "/grab", "", user)
            : Call("GET", "/grab?user_id=" + std::to_string(user) + "&red_packet_id=" + packet);
  });

  const ApiReply details = Call("GET", "/v1/packets/" + packet, "", 1);
  ASSERT_EQ(details.status, 200) << Describe(details);
  std::map<std::int64_t, std::int64_t> listed;  // user -> amount
  for (const boost::json::value& item : details.json.as_object().at("grabs").as_array()) {
    const boost::json::object& grab = item.as_object();
    ASSERT_TRUE(
        listed.emplace(grab.at("user_id").as_int64(), grab.at("amount_cents").as_int64()).second)
        << "a user listed twice: " << details.body;
  }
  ASSERT_EQ(listed.size(), static_cast<std::size_t>(kUsers));
  for (int i = 0; i < kRequests; ++i) {
    const std::int64_t user = kFirstGrabber + i / kTriesPerUser;
    const ApiReply& reply = replies[static_cast<std::size_t>(i)];
    SCOPED_TRACE("user " + std::to_string(user) + (i % 2 == 0 ? " POST grab" : " GET /grab"));
    ASSERT_TRUE(listed.contains(user));
    EXPECT_TRUE(reply.status == 200 || reply.status == 409) << Describe(reply);
    EXPECT_EQ(reply.Int("amount_cents"), listed.at(user)) << reply.body;
    if (reply.status == 200 && i % 2 == 1) {
      // The seed format: the amount in yuan as well, consistent with the cents.
      EXPECT_EQ(reply.String("message"), "Red packet grabbed successfully");
      EXPECT_NEAR(reply.json.as_object().at("amount").to_number<double>() * 100,
                  static_cast<double>(reply.Int("amount_cents")), 0.001);
    }
  }
  std::map<std::int64_t, int> successes;
  for (int i = 0; i < kRequests; ++i) {
    if (replies[static_cast<std::size_t>(i)].status == 200)
      ++successes[kFirstGrabber + i / kTriesPerUser];
  }
  for (const auto& [user, amount] : listed) {
    EXPECT_EQ(successes[user], 1) << "user " << user;
    EXPECT_EQ(Balance(user), amount) << "user " << user;
  }
  ExpectAuditOk();
}

// Money conservation under concurrent sends: 20 packets of 100 cents raced against a balance of
// 1000 cents make exactly 10 packets and ten 402s, never a negative balance.
TEST_F(ApiStampedeTest, ConcurrentSendsNeverOverdraw) {
  const std::int64_t sender = CreateFundedUser("sender", 1000);
  std::vector<ApiReply> replies(20);
  AllAtOnce(20, [&](int i) {
    replies[static_cast<std::size_t>(i)] =
        Call("POST", "/v1/packets", R"({"total_cents":100,"count":2})", sender);
  });
  std::set<std::string> created;
  int refused = 0;
  for (const ApiReply& reply : replies) {
    if (reply.status == 201) {
      created.insert(reply.String("packet_id"));
    } else {
      EXPECT_EQ(reply.status, 402) << Describe(reply);
      EXPECT_EQ(reply.Error(), "insufficient_funds");
      ++refused;
    }
  }
  EXPECT_EQ(created.size(), 10u);
  EXPECT_EQ(refused, 10);
  const ApiReply balance =
      Call("GET", "/v1/users/" + std::to_string(sender) + "/balance", "", sender);
  ASSERT_EQ(balance.status, 200) << Describe(balance);
  EXPECT_EQ(balance.Int("balance_cents"), 0);
  EXPECT_EQ(balance.Int("pending_cents"), 0);
  ExpectAuditOk();
}

}  // namespace
}  // namespace redpacket::testing_support
