// Expiry and refund in-process (tests/support/api_fixture.h), on the manual clock: nothing waits
// for time, the clock is Advance()d past the expiry and the sweep run with SweepNow(). What nobody
// grabbed goes back to the sender, once, across sweeps and a restart; a grab after expiry is 410, a
// repeat by an earlier grabber still 409. Grabs from eight threads race the expiry and the sweep:
// every acknowledged grab stays and grabs + refund == total to the cent. (The polls below wait for
// the applier to bring the journal's events to the ledger, not for time.) The refund surviving
// kill -9 is checked against the real binary: tests/e2e/expiry_e2etest.cc.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <iostream>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/api_fixture.h"

namespace redpacket::testing_support {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr std::int64_t kDeposit = 10000;

struct GrabRecord {
  std::int64_t user_id = 0;
  std::int64_t amount_cents = 0;
  std::int64_t seq = 0;
  bool operator==(const GrabRecord&) const = default;
};

// The "grabs" of a packet's details, by user id (a user listed twice fails the test).
std::map<std::int64_t, GrabRecord> GrabsByUser(const ApiReply& details) {
  std::map<std::int64_t, GrabRecord> grabs;
  for (const boost::json::value& item : details.json.as_object().at("grabs").as_array()) {
    const boost::json::object& grab = item.as_object();
    const GrabRecord record{grab.at("user_id").as_int64(), grab.at("amount_cents").as_int64(),
                            grab.at("seq").as_int64()};
    EXPECT_TRUE(grabs.emplace(record.user_id, record).second)
        << "user " << record.user_id << " appears twice in the grabs";
  }
  return grabs;
}

class ApiExpiryTest : public ApiFixture {
 protected:
  explicit ApiExpiryTest(ApiFixtureOptions options = {}) : ApiFixture(options) {}

  // The user's balance once nothing is pending (the journal's credits are in the ledger).
  ApiReply SettledBalance(std::int64_t user) {
    const std::string path = "/v1/users/" + std::to_string(user) + "/balance";
    ApiReply balance = Call("GET", path, "", user);
    for (int i = 0; i < 1000 && balance.status == 200 && balance.Int("pending_cents") != 0; ++i) {
      std::this_thread::sleep_for(milliseconds(10));
      balance = Call("GET", path, "", user);
    }
    return balance;
  }
};

TEST_F(ApiExpiryTest, UngrabbedRemainderIsRefundedOnceAfterExpiry) {
  const std::int64_t sender = CreateFundedUser("sender", kDeposit);
  const std::string packet =
      CreatePacket(sender, R"({"total_cents":1000,"count":10,"kind":"lucky","expires_in_s":60})");
  // A second packet, grabbed out before it expires: nothing to refund.
  const std::string finished =
      CreatePacket(sender, R"({"total_cents":300,"count":2,"kind":"equal","expires_in_s":60})");

  std::map<std::int64_t, std::int64_t> grabbed;  // user -> amount
  std::int64_t grabbed_cents = 0;
  for (std::int64_t user = 500; user < 503; ++user) {
    const ApiReply reply = Call("POST", GrabPath(packet), "", user);
    ASSERT_EQ(reply.status, 200) << Describe(reply);
    grabbed[user] = reply.Int("amount_cents");
    grabbed_cents += reply.Int("amount_cents");
  }
  for (std::int64_t user = 600; user < 602; ++user) {
    const ApiReply reply = Call("POST", GrabPath(finished), "", user);
    ASSERT_EQ(reply.status, 200) << Describe(reply);
    EXPECT_EQ(reply.Int("amount_cents"), 150);
  }
  const std::int64_t refund = 1000 - grabbed_cents;
  const std::int64_t expected_balance = kDeposit - 1000 - 300 + refund;

  clock().Advance(seconds(60));
  SweepNow();
  const ApiReply details = DetailsOnce(packet, "refunded", seconds(10));
  ASSERT_EQ(details.status, 200) << Describe(details);
  ASSERT_EQ(details.String("status"), "refunded") << Describe(details);
  EXPECT_EQ(details.Int("refund_cents"), refund) << details.body;
  EXPECT_EQ(GrabsByUser(details).size(), grabbed.size());

  // The refund may still be on its way from the journal to the ledger (pending), then lands.
  ApiReply balance = SettledBalance(sender);
  ASSERT_EQ(balance.status, 200) << Describe(balance);
  EXPECT_EQ(balance.Int("pending_cents"), 0) << balance.body;
  EXPECT_EQ(balance.Int("balance_cents"), expected_balance) << balance.body;

  const ApiReply late = Call("POST", GrabPath(packet), "", 700);
  EXPECT_EQ(late.status, 410) << Describe(late);
  EXPECT_EQ(late.Error(), "gone");
  const ApiReply repeat = Call("POST", GrabPath(packet), "", 500);
  EXPECT_EQ(repeat.status, 409) << Describe(repeat);
  EXPECT_EQ(repeat.Int("amount_cents"), grabbed[500]);
  const ApiReply exhausted = Call("GET", "/v1/packets/" + finished, "", 1);
  ASSERT_EQ(exhausted.status, 200) << Describe(exhausted);
  EXPECT_EQ(exhausted.String("status"), "exhausted") << exhausted.body;
  EXPECT_EQ(Call("POST", GrabPath(finished), "", 701).status, 410);
  for (const auto& [user, amount] : grabbed) EXPECT_EQ(Balance(user), amount);

  // Refunded once: after a restart (the journal replayed) and many sweeps, later and later, the
  // balance has not moved.
  Restart();
  for (int sweep = 0; sweep < 10; ++sweep) {
    clock().Advance(seconds(1));
    SweepNow();
  }
  balance = SettledBalance(sender);
  EXPECT_EQ(balance.Int("pending_cents"), 0) << balance.body;
  EXPECT_EQ(balance.Int("balance_cents"), expected_balance) << balance.body;
  const ApiReply again = Call("GET", "/v1/packets/" + packet, "", 1);
  ASSERT_EQ(again.status, 200) << Describe(again);
  EXPECT_EQ(again.String("status"), "refunded");
  EXPECT_EQ(again.Int("refund_cents"), refund);
  EXPECT_EQ(Call("POST", GrabPath(packet), "", 702).status, 410);
  ExpectAuditOk();
}

// Grabbers on threads of their own, each request as a new user, until the packet says 410.
class GrabStorm {
 public:
  struct Result {
    std::vector<GrabRecord> acknowledged;  // every 200
    std::vector<std::string> unexpected;   // any reply but a 200 with a share or a 410 "gone"
    int gone = 0;
  };

  GrabStorm(std::function<ApiReply(std::int64_t user)> grab, int threads) : grab_(grab) {
    for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { Run(); });
  }
  ~GrabStorm() { Join(); }

  std::size_t acknowledged() const { return acknowledged_.load(); }
  Result Join() {
    for (auto& thread : threads_) {
      if (thread.joinable()) thread.join();
    }
    return result_;
  }

 private:
  void Run() {
    for (int i = 0; i < 1'000'000; ++i) {  // bounded even if 410 never came
      const std::int64_t user = next_user_.fetch_add(1);
      const ApiReply reply = grab_(user);
      std::lock_guard lock(mutex_);
      if (reply.status == 410 && reply.Error() == "gone") {
        ++result_.gone;
        return;
      }
      const boost::json::object* body = reply.json.if_object();
      if (reply.status == 200 && body != nullptr && body->contains("amount_cents") &&
          body->contains("seq")) {
        result_.acknowledged.push_back({user, reply.Int("amount_cents"), reply.Int("seq")});
        acknowledged_.fetch_add(1);
        continue;
      }
      result_.unexpected.push_back("user " + std::to_string(user) + ": " + Describe(reply));
      return;
    }
  }

  std::function<ApiReply(std::int64_t)> grab_;
  std::atomic<std::int64_t> next_user_{100000};
  std::atomic<std::size_t> acknowledged_{0};
  std::mutex mutex_;
  Result result_;
  std::vector<std::thread> threads_;
};

ApiFixtureOptions BigPackets() {
  ApiFixtureOptions options;
  options.limits.max_count = 1'000'000;
  options.limits.max_total_cents = 100'000'000;
  return options;
}

class ApiExpiryRaceTest : public ApiExpiryTest {
 protected:
  ApiExpiryRaceTest() : ApiExpiryTest(BigPackets()) {}
};

// The sweeper races a stampede: grabs keep coming while the packet expires. Every acknowledged
// grab stays, nothing is granted after the refund, and grabs + refund == total to the cent.
TEST_F(ApiExpiryRaceTest, GrabsRacingExpiryAddUpWithTheRefund) {
  constexpr std::int64_t kTotal = 10'000'000;
  const std::int64_t sender = CreateFundedUser("sender", kTotal);
  // Far more shares than eight threads take before the expiry: it still holds some then.
  const std::string packet = CreatePacket(
      sender, R"({"total_cents":10000000,"count":100000,"kind":"lucky","expires_in_s":60})");
  GrabStorm storm([&](std::int64_t user) { return Call("POST", GrabPath(packet), "", user); }, 8);
  // Once grabs flow, the packet expires under them and the sweep closes it while they go on.
  for (int i = 0; i < 2000 && storm.acknowledged() < 200; ++i)
    std::this_thread::sleep_for(milliseconds(5));
  clock().Advance(seconds(60));
  SweepNow();
  const GrabStorm::Result result = storm.Join();
  EXPECT_TRUE(result.unexpected.empty()) << result.unexpected.front();
  EXPECT_EQ(result.gone, 8);  // every thread ended on a 410
  ASSERT_FALSE(result.acknowledged.empty());

  const ApiReply details = DetailsOnce(packet, "refunded", seconds(10));
  ASSERT_EQ(details.status, 200) << Describe(details);
  ASSERT_EQ(details.String("status"), "refunded") << details.body.substr(0, 300);
  const auto listed = GrabsByUser(details);
  for (const GrabRecord& record : result.acknowledged) {
    ASSERT_TRUE(listed.contains(record.user_id))
        << "acknowledged grab of user " << record.user_id << " lost";
    EXPECT_EQ(listed.at(record.user_id), record);
  }
  std::int64_t grabbed = 0;
  for (const auto& [user, record] : listed) grabbed += record.amount_cents;
  EXPECT_EQ(grabbed + details.Int("refund_cents"), kTotal);
  const ApiReply balance = SettledBalance(sender);
  EXPECT_EQ(balance.Int("pending_cents"), 0) << balance.body;
  EXPECT_EQ(balance.Int("balance_cents"), details.Int("refund_cents"));
  std::cout << result.acknowledged.size() << " grabs before expiry, refund "
            << details.Int("refund_cents") << " cents\n";
  ExpectAuditOk();
}

}  // namespace
}  // namespace redpacket::testing_support
