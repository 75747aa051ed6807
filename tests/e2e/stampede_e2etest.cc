// A stampede: 500 clients at once, each a distinct user, on one 100-share lucky packet.
// Exactly 100 win, the amounts sum to the total, nobody twice, every seq once, repeats get 409
// with the same amount, the details and balances agree, and the ledger audits clean.
#include <gtest/gtest.h>

#include <latch>
#include <mutex>
#include <set>

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

// Invariant 2 (docs/invariants.md) under retries: each user fires several grabs at once on
// separate connections, half of them through the seed-compatible GET /grab. One share each;
// every other answer is a 409 with that share's amount.
TEST(StampedeE2E, ConcurrentRetriesByOneUserGetOneShare) {
  constexpr int kUsers = 40;
  constexpr int kTriesPerUser = 8;
  constexpr int kRequests = kUsers * kTriesPerUser;
  ServerProcess server;
  server.Start();
  ApiClient api(server);
  const std::int64_t sender = api.CreateFundedUser("sender", kDeposit);
  const std::string packet =
      api.CreatePacket(sender, R"({"total_cents":10000,"count":100,"kind":"lucky"})");

  std::vector<Reply> replies(kRequests);
  std::latch connected(kRequests);
  RunThreads(kRequests, [&](int i) {
    const std::int64_t user = kFirstGrabber + i / kTriesPerUser;
    ApiClient client(server);
    client.Get("/healthz");
    connected.arrive_and_wait();
    replies[static_cast<std::size_t>(i)] =
        i % 2 == 0
            ? client.Post("/v1/packets/" + packet + "/grab", "", user)
            : client.Get("/grab?user_id=" + std::to_string(user) + "&red_packet_id=" + packet);
  });

  const auto listed = GrabsByUser(api.GetPacket(packet));
  ASSERT_EQ(listed.size(), static_cast<std::size_t>(kUsers));
  for (int i = 0; i < kRequests; ++i) {
    const std::int64_t user = kFirstGrabber + i / kTriesPerUser;
    const Reply& reply = replies[static_cast<std::size_t>(i)];
    SCOPED_TRACE("user " + std::to_string(user) + (i % 2 == 0 ? " POST grab" : " GET /grab"));
    ASSERT_TRUE(listed.contains(user));
    EXPECT_TRUE(reply.status == 200 || reply.status == 409) << Describe(reply);
    EXPECT_EQ(reply.Int("amount_cents"), listed.at(user).amount_cents) << reply.body;
    if (reply.status == 200 && i % 2 == 1) {
      // The seed format: the amount in yuan as well, consistent with the cents.
      EXPECT_EQ(reply.String("message"), "Red packet grabbed successfully");
      EXPECT_NEAR(reply.at("amount").to_number<double>() * 100,
                  static_cast<double>(reply.Int("amount_cents")), 0.001);
    }
  }
  std::map<std::int64_t, int> successes;
  for (int i = 0; i < kRequests; ++i) {
    if (replies[static_cast<std::size_t>(i)].status == 200)
      ++successes[kFirstGrabber + i / kTriesPerUser];
  }
  for (const auto& [user, record] : listed) {
    EXPECT_EQ(successes[user], 1) << "user " << user;
    EXPECT_EQ(api.GetBalance(user).total(), record.amount_cents) << "user " << user;
  }
  ASSERT_EQ(server.Stop(), 0);
  const CommandResult audit = server.Audit();
  EXPECT_EQ(audit.exit_code, 0) << audit.output;
}

// Money conservation under concurrent sends: 20 packets of 100 cents raced against a balance of
// 1000 cents make exactly 10 packets and ten 402s, never a negative balance.
TEST(StampedeE2E, ConcurrentSendsNeverOverdraw) {
  ServerProcess server;
  server.Start();
  ApiClient api(server);
  const std::int64_t sender = api.CreateFundedUser("sender", 1000);
  std::vector<Reply> replies(20);
  std::latch connected(20);
  RunThreads(20, [&](int i) {
    ApiClient client(server);
    client.Get("/healthz");
    connected.arrive_and_wait();
    replies[static_cast<std::size_t>(i)] =
        client.Post("/v1/packets", R"({"total_cents":100,"count":2})", sender);
  });
  std::set<std::string> created;
  int refused = 0;
  for (const Reply& reply : replies) {
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
  const ApiClient::Balance balance = api.GetBalance(sender);
  EXPECT_EQ(balance.balance_cents, 0);
  EXPECT_EQ(balance.pending_cents, 0);
  ASSERT_EQ(server.Stop(), 0);
  const CommandResult audit = server.Audit();
  EXPECT_EQ(audit.exit_code, 0) << audit.output;
}

}  // namespace
}  // namespace redpacket::e2e
