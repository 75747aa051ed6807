// The packets' API in-process (tests/support/api_fixture.h): what a client is told about grabs,
// repeats, exclusive packets, expiry and refunds, on a manual clock and a seeded RNG. Nothing here
// sleeps: expiry is a clock Advance() and a SweepNow(). A create's request_id:
// api_idempotency_test.cc.
#include <gtest/gtest.h>

#include <chrono>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/api_fixture.h"

namespace redpacket::testing_support {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

class ApiPacketsTest : public ApiFixture {
 protected:
  // The balance once the journal has the credits the test expects (the pending credits of a
  // grab or refund show as soon as it is durable; this waits for the fsync, not for time).
  std::int64_t BalanceOnce(std::int64_t user, std::int64_t expected) {
    std::int64_t balance = Balance(user);
    for (int i = 0; i < 500 && balance != expected; ++i) {
      std::this_thread::sleep_for(milliseconds(10));
      balance = Balance(user);
    }
    return balance;
  }
};

TEST_F(ApiPacketsTest, EachShareGoesOnceAndARepeatIsToldItsFirstAmount) {
  const std::int64_t sender = CreateFundedUser("sender", 10000);
  const std::string packet =
      CreatePacket(sender, R"({"total_cents":1000,"count":5,"kind":"lucky"})");
  std::set<std::int64_t> seqs;
  std::int64_t taken = 0;
  for (std::int64_t user = 100; user < 105; ++user) {
    const ApiReply grab = Call("POST", GrabPath(packet), "", user);
    ASSERT_EQ(grab.status, 200) << Describe(grab);
    EXPECT_TRUE(seqs.insert(grab.Int("seq")).second);
    taken += grab.Int("amount_cents");
    const ApiReply repeat = Call("POST", GrabPath(packet), "", user);
    EXPECT_EQ(repeat.status, 409) << Describe(repeat);
    EXPECT_EQ(repeat.Error(), "conflict");
    EXPECT_EQ(repeat.Int("amount_cents"), grab.Int("amount_cents"));
    EXPECT_EQ(repeat.Int("seq"), grab.Int("seq"));
  }
  EXPECT_EQ(taken, 1000);
  const ApiReply empty = Call("POST", GrabPath(packet), "", 105);
  EXPECT_EQ(empty.status, 410) << Describe(empty);
  const ApiReply details = Call("GET", "/v1/packets/" + packet, "", 105);
  ASSERT_EQ(details.status, 200) << Describe(details);
  EXPECT_EQ(details.String("status"), "exhausted");
}

TEST_F(ApiPacketsTest, AnExclusivePacketIsForbiddenToEveryoneButItsReceiver) {
  const std::int64_t sender = CreateFundedUser("sender", 10000);
  const std::int64_t receiver = CreateUser("receiver");
  const std::string packet = CreatePacket(
      sender, R"({"total_cents":300,"count":1,"receiver_id":)" + std::to_string(receiver) + "}");
  const ApiReply other = Call("POST", GrabPath(packet), "", receiver + 1000);
  EXPECT_EQ(other.status, 403) << Describe(other);
  const ApiReply mine = Call("POST", GrabPath(packet), "", receiver);
  ASSERT_EQ(mine.status, 200) << Describe(mine);
  EXPECT_EQ(mine.Int("amount_cents"), 300);
  EXPECT_EQ(BalanceOnce(receiver, 300), 300);
}

TEST_F(ApiPacketsTest, GrabbableUntilItsExpiryThenGoneAndTheRestRefundedOnce) {
  const std::int64_t sender = CreateFundedUser("sender", 10000);
  const std::string packet =
      CreatePacket(sender, R"({"total_cents":1000,"count":10,"kind":"equal","expires_in_s":60})");
  ASSERT_EQ(Call("POST", GrabPath(packet), "", 200).status, 200);
  clock().Advance(seconds(60) - milliseconds(1));
  const ApiReply last = Call("POST", GrabPath(packet), "", 201);
  ASSERT_EQ(last.status, 200) << "the millisecond before its expiry: " << Describe(last);
  clock().Advance(milliseconds(1));
  const ApiReply late = Call("POST", GrabPath(packet), "", 202);
  EXPECT_EQ(late.status, 410) << Describe(late);

  SweepNow();
  SweepNow();  // a second sweep refunds nothing more
  const ApiReply details = DetailsOnce(packet, "refunded", seconds(5));
  ASSERT_EQ(details.status, 200) << Describe(details);
  ASSERT_EQ(details.String("status"), "refunded") << Describe(details);
  EXPECT_EQ(details.Int("refund_cents"), 800);
  EXPECT_EQ(BalanceOnce(sender, 10000 - 200), 10000 - 200);

  Restart();  // the refund is not paid again after a restart
  SweepNow();
  EXPECT_EQ(BalanceOnce(sender, 10000 - 200), 10000 - 200);
  EXPECT_EQ(BalanceOnce(200, 100), 100);
}

TEST_F(ApiPacketsTest, BadCreatesAreRefusedWithAClearErrorAndChangeNothing) {
  const std::int64_t sender = CreateFundedUser("sender", 10000);
  const struct {
    const char* body;
    int status;
    const char* error;
  } cases[] = {
      {R"({"total_cents":100,"count":1)", 400, "bad_request"},
      {R"([{"total_cents":100,"count":1}])", 400, "bad_request"},
      {R"({"total_cents":"100","count":1})", 400, "bad_request"},
      {R"({"total_cents":100,"count":1.5})", 400, "bad_request"},
      {R"({"total_cents":0,"count":1})", 400, "bad_request"},
      {R"({"total_cents":100,"count":0})", 400, "bad_request"},
      {R"({"total_cents":5,"count":10})", 400, "bad_request"},
      {R"({"total_cents":100,"count":101})", 400, "bad_request"},
      {R"({"total_cents":100,"count":1,"kind":"fair"})", 400, "bad_request"},
      {R"({"total_cents":100,"count":1,"expires_in_s":59})", 400, "bad_request"},
      {R"({"total_cents":100,"count":3,"kind":"equal"})", 400, "bad_request"},
      {R"({"total_cents":20000,"count":1})", 402, "insufficient_funds"},
  };
  for (const auto& bad : cases) {
    SCOPED_TRACE(bad.body);
    const ApiReply reply = Call("POST", "/v1/packets", bad.body, sender);
    EXPECT_EQ(reply.status, bad.status) << Describe(reply);
    EXPECT_EQ(reply.Error(), bad.error) << Describe(reply);
    EXPECT_EQ(Balance(sender), 10000);
  }
  // Nothing was created: the next packet takes the first id.
  EXPECT_EQ(CreatePacket(sender, R"({"total_cents":100,"count":1})"), "1");
}

// The same seed splits the same way: the RNG is the fixture's, not the process's.
TEST(ApiSeededRandom, TheSameSeedSplitsALuckyPacketTheSameWay) {
  auto shares = [] {
    class Run : public ApiFixture {
     public:
      void TestBody() override {}
      std::vector<std::int64_t> Split() {
        SetUp();
        const std::int64_t sender = CreateFundedUser("sender", 10000);
        const std::string packet =
            CreatePacket(sender, R"({"total_cents":1000,"count":5,"kind":"lucky"})");
        std::vector<std::int64_t> amounts;
        for (std::int64_t user = 300; user < 305; ++user) {
          amounts.push_back(
              Call("POST", "/v1/packets/" + packet + "/grab", "", user).Int("amount_cents"));
        }
        TearDown();
        return amounts;
      }
    };
    return Run().Split();
  };
  EXPECT_EQ(shares(), shares());
}

}  // namespace
}  // namespace redpacket::testing_support
