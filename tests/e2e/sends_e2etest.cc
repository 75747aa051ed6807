// Sends at stampede scale: creates and deposits are committed in groups (many requests, one
// SQLite transaction). Many users at once create, deposit and grab, with and without
// request_ids, with repeats, reused request_ids and creates that cannot be paid in the same
// batches as good ones: each request is answered as if alone, money adds up to the cent after
// SIGTERM, and the ledger audits clean. A kill -9 in the middle of a burst of writes loses no
// acknowledged create or deposit and applies none twice.
#include <gtest/gtest.h>

#include <atomic>
#include <iostream>
#include <map>
#include <mutex>
#include <random>
#include <set>

#include "harness.h"

namespace redpacket::e2e {
namespace {

constexpr std::int64_t kFirstUser = 5000;
constexpr std::int64_t kInitialDeposit = 1'000'000;

void ExpectAuditOk(const ServerProcess& server, std::string_view when) {
  const CommandResult audit = server.Audit();
  EXPECT_EQ(audit.exit_code, 0) << when << ":\n" << audit.output;
  EXPECT_NE(audit.output.find("audit OK"), std::string::npos) << when << ":\n" << audit.output;
}

std::string DepositBody(std::int64_t amount, const std::string& request_id) {
  json::object body{{"amount_cents", amount}};
  if (!request_id.empty()) body["request_id"] = request_id;
  return json::serialize(body);
}

std::string CreateBody(std::int64_t total, std::int64_t count, const std::string& request_id) {
  json::object body{{"total_cents", total}, {"count", count}, {"kind", "lucky"}};
  if (!request_id.empty()) body["request_id"] = request_id;
  return json::serialize(body);
}

// What one user's thread saw acknowledged.
struct UserLedger {
  std::int64_t deposited = kInitialDeposit;  // deposits applied (each once)
  std::int64_t sent = 0;                     // totals of the packets created
  std::set<std::string> packets;             // ids of the packets this user created
};

TEST(SendsE2E, ConcurrentCreatesDepositsAndGrabsAddUpToTheCent) {
  constexpr int kUsers = 24;
  constexpr int kRoundsPerUser = 60;
  ServerProcess server({"--max-count", "1000", "--max-total-cents", "100000000000"});
  server.Start();
  {
    ApiClient api(server);
    for (int i = 0; i < kUsers; ++i) {
      ASSERT_EQ(api.Post("/v1/users/" + std::to_string(kFirstUser + i) + "/deposit",
                         DepositBody(kInitialDeposit, ""))
                    .status,
                200);
    }
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
    ApiClient api(server);
    std::mt19937_64 random(static_cast<std::uint64_t>(user));
    const std::string user_path = "/v1/users/" + std::to_string(user);
    for (int round = 0; round < kRoundsPerUser; ++round) {
      const std::string id = "u" + std::to_string(user) + "-" + std::to_string(round);
      switch (random() % 6) {
        case 0: {  // a deposit with a request_id, sent twice: applied once, the same answer
          const std::int64_t amount = 1 + static_cast<std::int64_t>(random() % 5000);
          const Reply first = api.Post(user_path + "/deposit", DepositBody(amount, id));
          ASSERT_EQ(first.status, 200) << Describe(first);
          mine.deposited += amount;
          const Reply again = api.Post(user_path + "/deposit", DepositBody(amount, id));
          ASSERT_EQ(again.status, 200) << Describe(again);
          EXPECT_EQ(again.Int("balance_cents"), first.Int("balance_cents")) << "repeat of " << id;
          // The same request_id for another amount: refused, nothing applied.
          const Reply other = api.Post(user_path + "/deposit", DepositBody(amount + 1, id));
          EXPECT_EQ(other.status, 409) << Describe(other);
          EXPECT_EQ(other.Error(), "idempotency_conflict");
          ++repeats;
          ++conflicts;
          break;
        }
        case 1: {  // a deposit without a request_id: each one applies
          const std::int64_t amount = 1 + static_cast<std::int64_t>(random() % 5000);
          const Reply reply = api.Post(user_path + "/deposit", DepositBody(amount, ""));
          ASSERT_EQ(reply.status, 200) << Describe(reply);
          mine.deposited += amount;
          break;
        }
        case 2:
        case 3: {  // a create that the user can pay (its lower bound: nobody else debits it)
          const std::int64_t count = 1 + static_cast<std::int64_t>(random() % 20);
          const std::int64_t total = count + static_cast<std::int64_t>(random() % 3000);
          const bool with_id = random() % 2 == 0;
          const Reply reply = api.Post("/v1/packets", CreateBody(total, count, with_id ? id : ""), user);
          ASSERT_EQ(reply.status, 201) << Describe(reply);
          const std::string packet = reply.String("packet_id");
          EXPECT_TRUE(mine.packets.insert(packet).second) << "packet " << packet << " given twice";
          mine.sent += total;
          if (with_id) {  // the repeat answers the same packet and debits nothing
            const Reply again = api.Post("/v1/packets", CreateBody(total, count, id), user);
            ASSERT_EQ(again.status, 201) << Describe(again);
            EXPECT_EQ(again.String("packet_id"), packet);
            const Reply other = api.Post("/v1/packets", CreateBody(total + 1, count, id), user);
            EXPECT_EQ(other.status, 409) << Describe(other);
            EXPECT_EQ(other.Error(), "idempotency_conflict");
            ++repeats;
          }
          std::lock_guard lock(packets_mutex);
          open_packets.push_back(packet);
          break;
        }
        case 4: {  // a create nobody can pay: 402 alone, whatever shares its batch
          const Reply reply =
              api.Post("/v1/packets", CreateBody(50'000'000'000, 10, random() % 2 ? id : ""), user);
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
          const Reply reply = api.Post("/v1/packets/" + packet + "/grab", "", user);
          ASSERT_TRUE(reply.status == 200 || reply.status == 409 || reply.status == 410) << Describe(reply);
          if (reply.status == 200) {
            std::lock_guard lock(grabs_mutex);
            EXPECT_TRUE(grabbed.emplace(std::make_pair(packet, user), reply.Int("amount_cents")).second);
          }
          const ApiClient::Balance balance = api.GetBalance(user);
          if (balance.balance_cents < 0 || balance.pending_cents < 0) ++negative_balances;
          break;
        }
      }
    }
  });
  std::cout << "overdrawn creates " << overdrawn << ", request_id repeats " << repeats
            << ", idempotency conflicts " << conflicts << ", grabs " << grabbed.size() << "\n";
  EXPECT_EQ(negative_balances.load(), 0);
  ASSERT_EQ(server.Stop(), 0);
  ExpectAuditOk(server, "after SIGTERM");

  // Every user's balance is exactly what the acknowledged answers say: deposits - sent +
  // received (no packet expired, so no refund).
  server.Start();
  ApiClient api(server);
  std::map<std::int64_t, std::int64_t> received;
  std::size_t listed_grabs = 0;
  for (const UserLedger& ledger : ledgers) {
    for (const std::string& packet : ledger.packets) {
      for (const auto& [user, record] : GrabsByUser(api.GetPacket(packet))) {
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
    const ApiClient::Balance balance = api.GetBalance(user);
    EXPECT_EQ(balance.pending_cents, 0);
    EXPECT_EQ(balance.balance_cents, ledger.deposited - ledger.sent + received[user]) << "user " << user;
  }
  ASSERT_EQ(server.Stop(), 0);
}

// One write of the burst, as the client knows it.
struct SentWrite {
  std::int64_t user = 0;
  bool create = false;
  std::int64_t amount = 0;  // deposit amount or packet total
  std::string request_id;
  int status = 0;  // 0: no answer (cut off by the kill)
  std::int64_t answer = 0;  // balance after the deposit, or the packet id
};

Reply Send(ApiClient& api, const SentWrite& write) {
  if (write.create) return api.Post("/v1/packets", CreateBody(write.amount, 5, write.request_id), write.user);
  return api.Post("/v1/users/" + std::to_string(write.user) + "/deposit",
                  DepositBody(write.amount, write.request_id));
}

std::int64_t AnswerOf(const SentWrite& write, const Reply& reply) {
  return write.create ? std::stoll(reply.String("packet_id")) : reply.Int("balance_cents");
}

TEST(SendsE2E, KillNineMidWriteBurstLosesNoAcknowledgedWriteAndAppliesNoneTwice) {
  constexpr int kThreads = 32;
  constexpr int kUsers = 8;  // threads share users: their writes land in the same batches
  constexpr int kAcknowledgedBeforeKill = 400;
  ServerProcess server({"--max-count", "1000", "--max-total-cents", "100000000000"});
  server.Start();
  {
    ApiClient api(server);
    for (int i = 0; i < kUsers; ++i) {
      ASSERT_EQ(api.Post("/v1/users/" + std::to_string(kFirstUser + i) + "/deposit",
                         DepositBody(kInitialDeposit, "initial"))
                    .status,
                200);
    }
  }
  std::mutex mutex;
  std::vector<SentWrite> writes;
  std::atomic<int> acknowledged{0};
  std::atomic<bool> killed{false};
  std::thread killer([&] {
    WaitUntil([&] { return acknowledged.load() >= kAcknowledgedBeforeKill; }, milliseconds(60000));
    server.Kill();
    killed = true;
  });
  RunThreads(kThreads, [&](int index) {
    ApiClient api(server);
    for (int n = 0; !killed.load(); ++n) {
      SentWrite write;
      write.user = kFirstUser + index % kUsers;
      write.create = n % 2 == 1;
      write.amount = write.create ? 5 + (n % 97) : 1 + (n % 89);
      write.request_id = "t" + std::to_string(index) + "-" + std::to_string(n);
      const Reply reply = Send(api, write);
      if (reply.status == 0) {  // cut off: it may or may not have been applied
        std::lock_guard lock(mutex);
        writes.push_back(write);
        return;
      }
      ASSERT_EQ(reply.status, write.create ? 201 : 200) << Describe(reply);
      write.status = reply.status;
      write.answer = AnswerOf(write, reply);
      ++acknowledged;
      std::lock_guard lock(mutex);
      writes.push_back(write);
    }
  });
  killer.join();
  ExpectAuditOk(server, "after kill -9");

  server.Start();
  ApiClient api(server);
  // Every acknowledged write is there: its repeat answers what it answered first (a lost one
  // would be applied now, with another answer). A cut-off one is applied now or was before,
  // once either way.
  int cut_off = 0;
  std::map<std::int64_t, std::int64_t> expected;
  for (int i = 0; i < kUsers; ++i) expected[kFirstUser + i] = kInitialDeposit;
  for (const SentWrite& write : writes) {
    const Reply again = Send(api, write);
    ASSERT_EQ(again.status, write.create ? 201 : 200) << Describe(again);
    if (write.status != 0) {
      EXPECT_EQ(AnswerOf(write, again), write.answer)
          << (write.create ? "create " : "deposit ") << write.request_id << " was lost";
    } else {
      ++cut_off;
    }
    expected[write.user] += write.create ? -write.amount : write.amount;
  }
  std::cout << writes.size() - static_cast<std::size_t>(cut_off) << " writes acknowledged, "
            << cut_off << " cut off by the kill\n";
  for (const auto& [user, cents] : expected) {
    EXPECT_EQ(api.GetBalance(user).total(), cents) << "user " << user;
  }
  ASSERT_EQ(server.Stop(), 0);
  ExpectAuditOk(server, "after the restart");
}

}  // namespace
}  // namespace redpacket::e2e
