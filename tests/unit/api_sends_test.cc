// Sends at stampede scale, in-process (tests/support/api_fixture.h) on 24 threads, so the
// sanitizers see the batched ledger writes under contention: creates and deposits are committed in
// groups (many requests, one SQLite transaction). Many users at once create, deposit and grab, with
// and without request_ids, with repeats, reused request_ids and creates that cannot be paid in the
// same batches as good ones: each request is answered as if alone, money adds up to the cent after
// a stop (as SIGTERM), and the ledger audits clean. kill -9 in the middle of a burst of writes is
// tests/e2e/sends_e2etest.cc.
#include <gtest/gtest.h>

#include <atomic>
#include <functional>
#include <iostream>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/api_fixture.h"
#include "tests/support/request_bodies.h"

namespace redpacket::testing_support {
namespace {

namespace json = boost::json;

constexpr std::int64_t kFirstUser = 5000;
constexpr std::int64_t kInitialDeposit = 1'000'000;

// What one user's thread saw acknowledged.
struct UserLedger {
  std::int64_t deposited = kInitialDeposit;  // deposits applied (each once)
  std::int64_t sent = 0;                     // totals of the packets created
  std::set<std::string> packets;             // ids of the packets this user created
};

struct GrabRecord {
  std::int64_t amount_cents = 0;
};

// The "grabs" of a packet's details, by user id (a user listed twice fails the test).
std::map<std::int64_t, GrabRecord> GrabsByUser(const ApiReply& details) {
  std::map<std::int64_t, GrabRecord> grabs;
  EXPECT_EQ(details.status, 200) << Describe(details);
  if (details.status != 200) return grabs;
  for (const json::value& item : details.json.as_object().at("grabs").as_array()) {
    const json::object& grab = item.as_object();
    EXPECT_TRUE(
        grabs.emplace(grab.at("user_id").as_int64(), GrabRecord{grab.at("amount_cents").as_int64()})
            .second)
        << "a user listed twice: " << details.body;
  }
  return grabs;
}

ApiFixtureOptions Sends() {
  ApiFixtureOptions options;
  options.limits.max_count = 1000;
  options.limits.max_total_cents = 100'000'000'000;
  return options;
}

class ApiSendsTest : public ApiFixture {
 protected:
  ApiSendsTest() : ApiFixture(Sends()) {}

  ApiReply Post(const std::string& target, const std::string& body, std::int64_t user = 0) {
    return Call("POST", target, body, user);
  }
  // Runs fn(0..n-1) on n threads and joins them.
  static void RunThreads(int n, const std::function<void(int)>& fn) {
    std::vector<std::thread> threads;
    for (int i = 0; i < n; ++i) threads.emplace_back(fn, i);
    for (auto& thread : threads) thread.join();
  }
};

TEST_F(ApiSendsTest, ConcurrentCreatesDepositsAndGrabsAddUpToTheCent) {
  constexpr int kUsers = 24;
  constexpr int kRoundsPerUser = 60;
  for (int i = 0; i < kUsers; ++i) {
    ASSERT_EQ(Call("POST", "/v1/users/" + std::to_string(kFirstUser + i) + "/deposit",
                   DepositBody(kInitialDeposit, ""))
                  .status,
              200);
  }

  std::vector<UserLedger> ledgers(kUsers);
  std::mutex packets_mutex;
  std::vector<std::string> open_packets;  // created by someone, for the others to grab
  std::mutex grabs_mutex;
  std::map<std::pair<std::string, std::int64_t>, std::int64_t> grabbed;  // (packet, user) -> cents
  std::atomic<int> overdrawn{0}, conflicts{0}, repeats{0}, negative_balances{0};

  RunThreads(kUsers, [&](int index) {
    const std::int64_t user = kFirstUser + index;
    UserLedger& mine = ledgers[static_cast<std::size_t>(index)];
    std::mt19937_64 random(static_cast<std::uint64_t>(user));
    const std::string user_path = "/v1/users/" + std::to_string(user);
    for (int round = 0; round < kRoundsPerUser; ++round) {
      const std::string id = "u" + std::to_string(user) + "-" + std::to_string(round);
      switch (random() % 6) {
        case 0: {  // a deposit with a request_id, sent twice: applied once, the same answer
          const std::int64_t amount = 1 + static_cast<std::int64_t>(random() % 5000);
          const ApiReply first = Post(user_path + "/deposit", DepositBody(amount, id));
          ASSERT_EQ(first.status, 200) << Describe(first);
          mine.deposited += amount;
          const ApiReply again = Post(user_path + "/deposit", DepositBody(amount, id));
          ASSERT_EQ(again.status, 200) << Describe(again);
          EXPECT_EQ(again.Int("balance_cents"), first.Int("balance_cents")) << "repeat of " << id;
          // The same request_id for another amount: refused, nothing applied.
          const ApiReply other = Post(user_path + "/deposit", DepositBody(amount + 1, id));
          EXPECT_EQ(other.status, 409) << Describe(other);
          EXPECT_EQ(other.Error(), "idempotency_conflict");
          ++repeats;
          ++conflicts;
          break;
        }
        case 1: {  // a deposit without a request_id: each one applies
          const std::int64_t amount = 1 + static_cast<std::int64_t>(random() % 5000);
          const ApiReply reply = Post(user_path + "/deposit", DepositBody(amount, ""));
          ASSERT_EQ(reply.status, 200) << Describe(reply);
          mine.deposited += amount;
          break;
        }
        case 2:
        case 3: {  // a create that the user can pay (its lower bound: nobody else debits it)
          const std::int64_t count = 1 + static_cast<std::int64_t>(random() % 20);
          const std::int64_t total = count + static_cast<std::int64_t>(random() % 3000);
          const bool with_id = random() % 2 == 0;
          const ApiReply reply =
              Post("/v1/packets", CreateBody(total, count, with_id ? id : ""), user);
          ASSERT_EQ(reply.status, 201) << Describe(reply);
          const std::string packet = reply.String("packet_id");
          EXPECT_TRUE(mine.packets.insert(packet).second) << "packet " << packet << " given twice";
          mine.sent += total;
          if (with_id) {  // the repeat answers the same packet and debits nothing
            const ApiReply again = Post("/v1/packets", CreateBody(total, count, id), user);
            ASSERT_EQ(again.status, 201) << Describe(again);
            EXPECT_EQ(again.String("packet_id"), packet);
            const ApiReply other = Post("/v1/packets", CreateBody(total + 1, count, id), user);
            EXPECT_EQ(other.status, 409) << Describe(other);
            EXPECT_EQ(other.Error(), "idempotency_conflict");
            ++repeats;
          }
          std::lock_guard lock(packets_mutex);
          open_packets.push_back(packet);
          break;
        }
        case 4: {  // a create nobody can pay: 402 alone, whatever shares its batch
          const ApiReply reply =
              Post("/v1/packets", CreateBody(50'000'000'000, 10, random() % 2 ? id : ""), user);
          ASSERT_EQ(reply.status, 402) << Describe(reply);
          EXPECT_EQ(reply.Error(), "insufficient_funds");
          ++overdrawn;
          break;
        }
        default: {  // grab someone's packet, and read the balance meanwhile
          std::string packet;
          {
            std::lock_guard lock(packets_mutex);
            if (open_packets.empty()) break;
            packet = open_packets[random() % open_packets.size()];
          }
          const ApiReply reply = Post("/v1/packets/" + packet + "/grab", "", user);
          ASSERT_TRUE(reply.status == 200 || reply.status == 409 || reply.status == 410)
              << Describe(reply);
          if (reply.status == 200) {
            std::lock_guard lock(grabs_mutex);
            EXPECT_TRUE(
                grabbed.emplace(std::make_pair(packet, user), reply.Int("amount_cents")).second);
          }
          const ApiReply balance = Call("GET", user_path + "/balance", "", user);
          if (balance.Int("balance_cents") < 0 || balance.Int("pending_cents") < 0)
            ++negative_balances;
          break;
        }
      }
    }
  });
  std::cout << "overdrawn creates " << overdrawn << ", request_id repeats " << repeats
            << ", idempotency conflicts " << conflicts << ", grabs " << grabbed.size() << "\n";
  EXPECT_EQ(negative_balances.load(), 0);
  ExpectAuditOk();  // stopped as SIGTERM stops, audited, started again

  // Every user's balance is exactly what the acknowledged answers say: deposits - sent +
  // received (no packet expired, so no refund).
  std::map<std::int64_t, std::int64_t> received;
  std::size_t listed_grabs = 0;
  for (const UserLedger& ledger : ledgers) {
    for (const std::string& packet : ledger.packets) {
      for (const auto& [user, record] : GrabsByUser(Call("GET", "/v1/packets/" + packet, "", 1))) {
        received[user] += record.amount_cents;
        ++listed_grabs;
        const auto seen = grabbed.find({packet, user});
        ASSERT_NE(seen, grabbed.end()) << "a grab nobody was answered 200 for";
        EXPECT_EQ(seen->second, record.amount_cents);
      }
    }
  }
  EXPECT_EQ(listed_grabs, grabbed.size()) << "an acknowledged grab is missing";
  for (int i = 0; i < kUsers; ++i) {
    const std::int64_t user = kFirstUser + i;
    const UserLedger& ledger = ledgers[static_cast<std::size_t>(i)];
    const ApiReply balance =
        Call("GET", "/v1/users/" + std::to_string(user) + "/balance", "", user);
    EXPECT_EQ(balance.Int("pending_cents"), 0) << balance.body;
    EXPECT_EQ(balance.Int("balance_cents"), ledger.deposited - ledger.sent + received[user])
        << "user " << user;
  }
  ExpectAuditOk();
}

}  // namespace
}  // namespace redpacket::testing_support
