// Expiry and refund: what nobody grabbed goes back to the sender, once, across restarts; a grab
// after expiry is 410, a repeat by an earlier grabber still 409.
#include <gtest/gtest.h>

#include <iostream>

#include "harness.h"

namespace redpacket::e2e {
namespace {

constexpr std::int64_t kDeposit = 10000;
constexpr std::int64_t kSweepIntervalMs = 100;

TEST(ExpiryE2E, UngrabbedRemainderIsRefundedOnceAfterExpiry) {
  ServerProcess server(
      {"--min-expires-in-s", "1", "--sweep-interval-ms", std::to_string(kSweepIntervalMs)});
  server.Start();
  ApiClient api(server);
  const std::int64_t sender = api.CreateFundedUser("sender", kDeposit);
  const std::string packet = api.CreatePacket(
      sender, R"({"total_cents":1000,"count":10,"kind":"lucky","expires_in_s":1})");
  // A second packet, grabbed out before it expires: nothing to refund.
  const std::string finished =
      api.CreatePacket(sender, R"({"total_cents":300,"count":2,"kind":"equal","expires_in_s":1})");

  std::map<std::int64_t, std::int64_t> grabbed;  // user -> amount
  std::int64_t grabbed_cents = 0;
  for (std::int64_t user = 500; user < 503; ++user) {
    const Reply reply = api.Post("/v1/packets/" + packet + "/grab", "", user);
    ASSERT_EQ(reply.status, 200) << Describe(reply);
    grabbed[user] = reply.Int("amount_cents");
    grabbed_cents += reply.Int("amount_cents");
  }
  for (std::int64_t user = 600; user < 602; ++user) {
    const Reply reply = api.Post("/v1/packets/" + finished + "/grab", "", user);
    ASSERT_EQ(reply.status, 200) << Describe(reply);
    EXPECT_EQ(reply.Int("amount_cents"), 150);
  }
  const std::int64_t refund = 1000 - grabbed_cents;
  const std::int64_t expected_balance = kDeposit - 1000 - 300 + refund;

  json::object details;
  ASSERT_NO_FATAL_FAILURE(WaitForPacketStatus(api, packet, "refunded", &details));
  EXPECT_EQ(details.at("refund_cents").as_int64(), refund) << json::serialize(details);
  EXPECT_EQ(GrabsByUser(details).size(), grabbed.size());

  // The refund may still be on its way from the journal to the ledger (pending), then lands.
  ApiClient::Balance balance;
  ASSERT_TRUE(WaitUntil(
      [&] {
        balance = api.GetBalance(sender);
        return balance.pending_cents == 0 && balance.balance_cents == expected_balance;
      },
      milliseconds(10000), milliseconds(50)))
      << "sender balance " << balance.balance_cents << " + pending " << balance.pending_cents
      << ", expected " << expected_balance;

  const Reply late = api.Post("/v1/packets/" + packet + "/grab", "", 700);
  EXPECT_EQ(late.status, 410) << Describe(late);
  EXPECT_EQ(late.Error(), "gone");
  const Reply repeat = api.Post("/v1/packets/" + packet + "/grab", "", 500);
  EXPECT_EQ(repeat.status, 409) << Describe(repeat);
  EXPECT_EQ(repeat.Int("amount_cents"), grabbed[500]);
  const json::object exhausted = api.GetPacket(finished);
  EXPECT_EQ(exhausted.at("status").as_string(), "exhausted") << json::serialize(exhausted);
  EXPECT_EQ(api.Post("/v1/packets/" + finished + "/grab", "", 701).status, 410);
  for (const auto& [user, amount] : grabbed) EXPECT_EQ(api.GetBalance(user).total(), amount);

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

// The sweeper races a stampede: grabs keep coming while the packet expires. Every acknowledged
// grab stays, nothing is granted after the refund, and grabs + refund == total to the cent.
TEST(ExpiryE2E, GrabsRacingExpiryAddUpWithTheRefund) {
  ServerProcess server({"--min-expires-in-s", "1", "--sweep-interval-ms", "10", "--max-count",
                        "1000000", "--max-total-cents", "100000000"});
  server.Start();
  ApiClient api(server);
  const std::int64_t sender = api.CreateFundedUser("sender", 10000000);
  // Expiry counts from the request, and creating the packet splits it first: under the
  // sanitizers (slower splits, fewer grabs a second) fewer shares and a later expiry, so that the
  // packet is still open when the storm starts and still holds shares when it expires.
  const json::object body{{"total_cents", 10000000},
                          {"count", 1000000 / Slowdown()},
                          {"kind", "lucky"},
                          {"expires_in_s", Slowdown()}};
  const std::string packet = api.CreatePacket(sender, json::serialize(body));
  std::atomic<std::int64_t> next_user{100000};
  GrabStorm storm(server, packet, 16, next_user);  // runs until the packet says 410
  const GrabStorm::Result result = storm.Join();
  EXPECT_TRUE(result.unexpected.empty()) << result.unexpected.front();
  EXPECT_EQ(result.transport_errors, 0);
  EXPECT_GT(result.gone, 0);
  ASSERT_FALSE(result.acknowledged.empty());

  json::object details;
  ASSERT_NO_FATAL_FAILURE(WaitForPacketStatus(api, packet, "refunded", &details));
  const auto listed = GrabsByUser(details);
  for (const GrabRecord& record : result.acknowledged) {
    ASSERT_TRUE(listed.contains(record.user_id))
        << "acknowledged grab of user " << record.user_id << " lost";
    EXPECT_EQ(listed.at(record.user_id), record);
  }
  std::int64_t grabbed = 0;
  for (const auto& [user, record] : listed) grabbed += record.amount_cents;
  EXPECT_EQ(grabbed + details.at("refund_cents").as_int64(), 10000000);
  ApiClient::Balance balance;
  EXPECT_TRUE(WaitUntil(
      [&] {
        balance = api.GetBalance(sender);
        return balance.pending_cents == 0;
      },
      milliseconds(10000), milliseconds(50)));
  EXPECT_EQ(balance.balance_cents, details.at("refund_cents").as_int64());
  std::cout << result.acknowledged.size() << " grabs before expiry, refund "
            << details.at("refund_cents").as_int64() << " cents\n";
  ASSERT_EQ(server.Stop(), 0);
  const CommandResult audit = server.Audit();
  EXPECT_EQ(audit.exit_code, 0) << audit.output;
}

}  // namespace
}  // namespace redpacket::e2e
