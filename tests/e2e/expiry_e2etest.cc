// Expiry and refund against the real binary, in real time: a packet expires by the system clock,
// the sweeper (on its interval) refunds what nobody grabbed, and after kill -9 and a restart (the
// journal replayed) the refund is not paid again. The rest of expiry (the last millisecond, 410 and
// 409 after it, the refund once across sweeps and a restart, grabs racing the sweep) runs
// in-process on a manual clock: tests/unit/api_expiry_test.cc.
#include <gtest/gtest.h>

#include "harness.h"

namespace redpacket::e2e {
namespace {

constexpr std::int64_t kDeposit = 10000;
constexpr std::int64_t kSweepIntervalMs = 100;

TEST(ExpiryE2E, ARefundIsNotPaidAgainAfterAKillNine) {
  ServerProcess server(
      {"--min-expires-in-s", "1", "--sweep-interval-ms", std::to_string(kSweepIntervalMs)});
  server.Start();
  ApiClient api(server);
  const std::int64_t sender = api.CreateFundedUser("sender", kDeposit);
  const std::string packet = api.CreatePacket(
      sender, R"({"total_cents":1000,"count":10,"kind":"lucky","expires_in_s":1})");
  const Reply grab = api.Post("/v1/packets/" + packet + "/grab", "", 500);
  ASSERT_EQ(grab.status, 200) << Describe(grab);
  const std::int64_t refund = 1000 - grab.Int("amount_cents");
  const std::int64_t expected_balance = kDeposit - 1000 + refund;

  json::object details;
  ASSERT_NO_FATAL_FAILURE(WaitForPacketStatus(api, packet, "refunded", &details));
  EXPECT_EQ(details.at("refund_cents").as_int64(), refund) << json::serialize(details);
  ApiClient::Balance balance;
  ASSERT_TRUE(WaitUntil(
      [&] {
        balance = api.GetBalance(sender);
        return balance.pending_cents == 0 && balance.balance_cents == expected_balance;
      },
      milliseconds(10000), milliseconds(50)))
      << "sender balance " << balance.balance_cents << " + pending " << balance.pending_cents
      << ", expected " << expected_balance;

  // Refunded once: after a crash, a restart (the journal replayed) and many sweeps, the balance
  // has not moved.
  server.Kill();
  server.Start();
  ApiClient after(server);
  const milliseconds observe(10 * kSweepIntervalMs);
  EXPECT_FALSE(WaitUntil([&] { return after.GetBalance(sender).total() != expected_balance; },
                         observe, milliseconds(kSweepIntervalMs)))
      << "the sender's balance moved after the restart: " << after.GetBalance(sender).total();
  EXPECT_EQ(after.GetBalance(sender).balance_cents, expected_balance);
  const json::object again = after.GetPacket(packet);
  EXPECT_EQ(again.at("status").as_string(), "refunded");
  EXPECT_EQ(again.at("refund_cents").as_int64(), refund);
  EXPECT_EQ(after.Post("/v1/packets/" + packet + "/grab", "", 702).status, 410);

  ASSERT_EQ(server.Stop(), 0);
  const CommandResult audit = server.Audit();
  EXPECT_EQ(audit.exit_code, 0) << audit.output;
}

}  // namespace
}  // namespace redpacket::e2e
