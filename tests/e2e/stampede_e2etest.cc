// A stampede: 500 clients at once, each a distinct user, on one 100-share lucky packet.
// Exactly 100 win, the amounts sum to the total, nobody twice, every seq once, repeats get 409
// with the same amount, the details and balances agree, and the ledger audits clean. One user's
// concurrent retries and concurrent sends against one balance run in-process on threads
// (tests/unit/api_stampede_test.cc).
#include <gtest/gtest.h>

#include "harness.h"

namespace redpacket::e2e {
namespace {

constexpr int kClients = 500;
constexpr int kShares = 100;
constexpr std::int64_t kTotalCents = 10000;
constexpr std::int64_t kDeposit = 20000;
constexpr std::int64_t kFirstGrabber = 1000;

TEST(StampedeE2E, FiveHundredClientsOnAHundredShareLuckyPacket) {
  ServerProcess server({"--max-count", "1000"});
  server.Start();
  ApiClient api(server);
  const std::int64_t sender = api.CreateFundedUser("sender", kDeposit);
  const std::string packet = api.CreatePacket(
      sender, R"({"total_cents":10000,"count":100,"kind":"lucky","greeting":"恭喜发财"})");
  const std::string grab_path = "/v1/packets/" + packet + "/grab";

  const std::vector<Reply> replies =
      SimultaneousGrabs(kClients, kFirstGrabber, packet, [&](int) -> const ServerProcess& { return server; });
  StampedeTally tally;
  ASSERT_NO_FATAL_FAILURE(TallyGrabs(replies, kFirstGrabber, packet, kShares, &tally));
  const auto& winners = tally.winners;
  ASSERT_NO_FATAL_FAILURE(ExpectEveryShareTakenOnce(tally, kClients, kShares, kTotalCents));

  // A repeat is answered 409 with the first grab's amount, before emptiness is considered.
  for (const auto& [user, record] : winners) {
    const Reply again = api.Post(grab_path, "", user);
    ASSERT_EQ(again.status, 409) << Describe(again);
    EXPECT_EQ(again.Error(), "conflict");
    EXPECT_EQ(again.Int("amount_cents"), record.amount_cents);
  }
  // A loser asking again is still told the packet is gone.
  EXPECT_EQ(api.Post(grab_path, "", kFirstGrabber + kClients + 1).status, 410);

  const json::object details = api.GetPacket(packet);
  EXPECT_EQ(details.at("status").as_string(), "exhausted");
  EXPECT_EQ(details.at("remaining_count").as_int64(), 0);
  EXPECT_EQ(details.at("remaining_cents").as_int64(), 0);
  EXPECT_EQ(details.at("total_cents").as_int64(), kTotalCents);
  const auto listed = GrabsByUser(details);
  EXPECT_EQ(listed, winners);
  // Best luck: the largest amount, ties to the earliest seq.
  const GrabRecord* best = nullptr;
  for (const auto& [user, record] : winners) {
    if (best == nullptr || record.amount_cents > best->amount_cents ||
        (record.amount_cents == best->amount_cents && record.seq < best->seq)) {
      best = &record;
    }
  }
  ASSERT_TRUE(details.at("best_luck_user_id").is_int64()) << json::serialize(details);
  EXPECT_EQ(details.at("best_luck_user_id").as_int64(), best->user_id);

  for (const auto& [user, record] : winners) {
    EXPECT_EQ(api.GetBalance(user).total(), record.amount_cents) << "user " << user;
  }
  EXPECT_EQ(api.GetBalance(sender).total(), kDeposit - kTotalCents);

  ASSERT_EQ(server.Stop(), 0);
  const CommandResult audit = server.Audit();
  EXPECT_EQ(audit.exit_code, 0) << audit.output;
  EXPECT_NE(audit.output.find("audit OK"), std::string::npos) << audit.output;
}

}  // namespace
}  // namespace redpacket::e2e
