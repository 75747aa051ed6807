// Crashes and shutdowns in the middle of a stampede. kill -9: every acknowledged grab survives
// the restart and the packet still finishes with the exact sum. SIGTERM: in-flight grabs get a
// complete answer, the process exits 0, and what was acknowledged is there after a restart.
#include <gtest/gtest.h>

#include <iostream>
#include <set>

#include "harness.h"

namespace redpacket::e2e {
namespace {

// The ledger as left on disk must audit clean, whatever happened to the process.
void ExpectAuditOk(const ServerProcess& server, std::string_view when) {
  const CommandResult audit = server.Audit();
  EXPECT_EQ(audit.exit_code, 0) << when << ":\n" << audit.output;
  EXPECT_NE(audit.output.find("audit OK"), std::string::npos) << when << ":\n" << audit.output;
}

// Every grab some client saw acknowledged is in the details, with the same amount and seq, and a
// repeat by that user gets 409 with the same amount.
void ExpectAcknowledgedGrabsKept(ApiClient& api, const std::string& packet,
                                 const std::map<std::int64_t, GrabRecord>& acknowledged) {
  const auto listed = GrabsByUser(api.GetPacket(packet));
  for (const auto& [user, record] : acknowledged) {
    const auto it = listed.find(user);
    ASSERT_NE(it, listed.end()) << "acknowledged grab of user " << user << " (seq " << record.seq
                                << ") was lost";
    EXPECT_EQ(it->second, record) << "user " << user;
    const Reply again = api.Post("/v1/packets/" + packet + "/grab", "", user);
    ASSERT_EQ(again.status, 409) << "user " << user << ": " << Describe(again);
    EXPECT_EQ(again.Int("amount_cents"), record.amount_cents);
  }
}

// A packet's details add up: each grab >= 1 cent, seqs 1..n once, grabs + remaining == total.
void ExpectConsistent(const json::object& details) {
  const auto grabs = GrabsByUser(details);
  std::set<std::int64_t> seqs;
  std::int64_t sum = 0;
  for (const auto& [user, record] : grabs) {
    EXPECT_GE(record.amount_cents, 1);
    seqs.insert(record.seq);
    sum += record.amount_cents;
  }
  ASSERT_EQ(seqs.size(), grabs.size()) << "a seq was given twice";
  if (!seqs.empty()) {
    EXPECT_EQ(*seqs.begin(), 1);
    EXPECT_EQ(*seqs.rbegin(), static_cast<std::int64_t>(grabs.size()));
  }
  EXPECT_EQ(sum + details.at("remaining_cents").as_int64(), details.at("total_cents").as_int64());
  EXPECT_EQ(static_cast<std::int64_t>(grabs.size()) + details.at("remaining_count").as_int64(),
            details.at("count").as_int64());
}

void Record(const GrabStorm::Result& result, std::map<std::int64_t, GrabRecord>& acknowledged) {
  EXPECT_TRUE(result.unexpected.empty())
      << result.unexpected.size() << " unexpected replies, first: " << result.unexpected.front();
  for (const GrabRecord& record : result.acknowledged) {
    EXPECT_TRUE(acknowledged.emplace(record.user_id, record).second)
        << "user " << record.user_id << " twice";
  }
}

TEST(CrashE2E, KillNineMidStampedeLosesNoAcknowledgedGrab) {
  // Under the sanitizers the polling thread that kills the server can be late by hundreds of
  // grabs (64 instrumented client threads on the same cores): more shares, so that each round's
  // kill still lands mid-stampede.
  const std::int64_t kShares = 2000 * Slowdown();
  const std::int64_t kTotalCents = 200 * kShares;
  constexpr int kRounds = 3;
  constexpr std::size_t kGrabsBeforeKill = 300;  // per round: the kill lands mid-stampede
  ServerProcess server({"--max-count", std::to_string(2 * kShares), "--max-total-cents",
                        std::to_string(2 * kTotalCents)});
  server.Start();
  std::string packet;
  {
    ApiClient api(server);
    const std::int64_t sender = api.CreateFundedUser("sender", kTotalCents);
    packet = api.CreatePacket(
        sender, json::serialize(json::object{
                    {"total_cents", kTotalCents}, {"count", kShares}, {"kind", "lucky"}}));
  }

  std::atomic<std::int64_t> next_user{100000};
  std::map<std::int64_t, GrabRecord> acknowledged;
  for (int round = 0; round < kRounds; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    {
      GrabStorm storm(server, packet, 64, next_user);
      ASSERT_TRUE(storm.WaitForAcknowledged(kGrabsBeforeKill, milliseconds(20000)));
      server.Kill();
      const GrabStorm::Result result = storm.Join();
      EXPECT_GT(result.transport_errors, 0) << "the kill should have cut some grabs off";
      Record(result, acknowledged);
      std::cout << "round " << round << ": killed after " << result.acknowledged.size()
                << " acknowledged grabs, " << result.transport_errors << " cut off\n";
    }
    ExpectAuditOk(server, "after kill -9");
    server.Start();
    ApiClient api(server);
    ExpectAcknowledgedGrabsKept(api, packet, acknowledged);
    const json::object details = api.GetPacket(packet);
    ExpectConsistent(details);
    ASSERT_GT(details.at("remaining_count").as_int64(), 0) << "the packet finished before the kill";
  }

  // Finish the packet with new users.
  {
    GrabStorm storm(server, packet, 16, next_user);
    const GrabStorm::Result result = storm.Join();
    EXPECT_EQ(result.transport_errors, 0);
    Record(result, acknowledged);
  }
  ApiClient api(server);
  const json::object details = api.GetPacket(packet);
  ExpectConsistent(details);
  EXPECT_EQ(details.at("status").as_string(), "exhausted");
  EXPECT_EQ(details.at("remaining_count").as_int64(), 0);
  const auto listed = GrabsByUser(details);
  EXPECT_EQ(static_cast<std::int64_t>(listed.size()), kShares);
  std::int64_t sum = 0;
  for (const auto& [user, record] : listed) sum += record.amount_cents;
  EXPECT_EQ(sum, kTotalCents);
  ExpectAcknowledgedGrabsKept(api, packet, acknowledged);
  // Credited exactly once, though the journal was replayed after each crash.
  for (const auto& [user, record] : listed) {
    ASSERT_EQ(api.GetBalance(user).total(), record.amount_cents) << "user " << user;
  }

  ASSERT_EQ(server.Stop(), 0);
  ExpectAuditOk(server, "after the packet finished");
}

TEST(CrashE2E, SigtermMidStampedeAnswersInFlightGrabsAndExitsZero) {
  ServerProcess server({"--max-count", "100000", "--max-total-cents", "10000000"});
  server.Start();
  std::string packet;
  {
    ApiClient api(server);
    const std::int64_t sender = api.CreateFundedUser("sender", 1000000);
    packet = api.CreatePacket(sender, R"({"total_cents":1000000,"count":100000,"kind":"lucky"})");
  }
  std::atomic<std::int64_t> next_user{100000};
  std::map<std::int64_t, GrabRecord> acknowledged;
  {
    GrabStorm storm(server, packet, 32, next_user);
    ASSERT_TRUE(storm.WaitForAcknowledged(300, milliseconds(20000)));
    server.SendTerminate();
    const GrabStorm::Result result = storm.Join();
    // Every reply a client received is a complete 200 (or 410); the rest found the door closed.
    Record(result, acknowledged);
    EXPECT_EQ(server.WaitForExit(), 0);
    std::cout << "SIGTERM after " << result.acknowledged.size() << " acknowledged grabs, "
              << result.gone << " gone, " << result.transport_errors << " refused or closed\n";
  }
  ExpectAuditOk(server, "after SIGTERM");

  server.Start();
  ApiClient api(server);
  ExpectAcknowledgedGrabsKept(api, packet, acknowledged);
  ExpectConsistent(api.GetPacket(packet));
  ASSERT_EQ(server.Stop(), 0);
  ExpectAuditOk(server, "after the restart");
}

}  // namespace
}  // namespace redpacket::e2e
