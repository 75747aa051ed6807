// Sends against the real binary: a kill -9 in the middle of a burst of writes loses no
// acknowledged create or deposit and applies none twice. Many users creating, depositing and
// grabbing at once (batched writes, repeats, conflicts, unpayable creates) run in-process on
// threads: tests/unit/api_sends_test.cc.
#include <gtest/gtest.h>

#include <atomic>
#include <iostream>
#include <map>
#include <mutex>

#include "harness.h"
#include "tests/support/request_bodies.h"

namespace redpacket::e2e {
namespace {

constexpr std::int64_t kFirstUser = 5000;
constexpr std::int64_t kInitialDeposit = 1'000'000;

void ExpectAuditOk(const ServerProcess& server, std::string_view when) {
  const CommandResult audit = server.Audit();
  EXPECT_EQ(audit.exit_code, 0) << when << ":\n" << audit.output;
  EXPECT_NE(audit.output.find("audit OK"), std::string::npos) << when << ":\n" << audit.output;
}

using testing_support::CreateBody;
using testing_support::DepositBody;

// One write of the burst, as the client knows it.
struct SentWrite {
  std::int64_t user = 0;
  bool create = false;
  std::int64_t amount = 0;  // deposit amount or packet total
  std::string request_id;
  int status = 0;           // 0: no answer (cut off by the kill)
  std::int64_t answer = 0;  // balance after the deposit, or the packet id
};

Reply Send(ApiClient& api, const SentWrite& write) {
  if (write.create)
    return api.Post("/v1/packets", CreateBody(write.amount, 5, write.request_id), write.user);
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
