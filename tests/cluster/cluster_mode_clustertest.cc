// Cluster mode end to end (label `cluster`): real `redpacket serve --mode cluster` processes,
// each with its own data dir, and a real `redpacket worker`, on the Redis Cluster, MariaDB
// primary + replica and Kafka broker of the fixtures. Servers share every packet, account and
// id; grabs are credited by the worker exactly once; the audit is clean after each case.
// Each case uses users of its own (ids from a range of its own), on the one shared ledger.
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <filesystem>
#include <future>
#include <iostream>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "bus/kafka/kafka_sink.h"
#include "cluster_harness.h"

namespace redpacket::e2e {
namespace {

constexpr milliseconds kCreditWait(30000);

// Every acknowledged grab is credited: each winner's balance is exactly its amount (the users
// are fresh), within one deadline for all of them.
void ExpectCredited(ApiClient& api, const std::map<std::int64_t, GrabRecord>& winners) {
  std::map<std::int64_t, std::int64_t> missing;
  for (const auto& [user, record] : winners) missing[user] = record.amount_cents;
  const auto deadline = std::chrono::steady_clock::now() + kCreditWait;
  while (!missing.empty() && std::chrono::steady_clock::now() < deadline) {
    for (auto it = missing.begin(); it != missing.end();) {
      std::int64_t last = 0;
      if (WaitForBalance(api, it->first, it->second, milliseconds(0), &last)) {
        it = missing.erase(it);
      } else {
        ++it;
      }
    }
    if (!missing.empty()) std::this_thread::sleep_for(milliseconds(100));
  }
  EXPECT_TRUE(missing.empty()) << missing.size() << " of " << winners.size()
                               << " acknowledged grabs not credited within " << kCreditWait.count()
                               << " ms, e.g. user " << missing.begin()->first;
}

void ExpectAuditClean() {
  const CommandResult audit = ClusterAudit();
  EXPECT_EQ(audit.exit_code, 0) << audit.output;
}

// One case's processes: a worker and one API server on the fixtures' services.
struct ClusterCase {
  explicit ClusterCase(std::vector<std::string> serve_flags = {},
                       std::vector<std::string> worker_flags = {})
      : worker(ServerProcess::Worker(WorkerFlags(std::move(worker_flags)))),
        server(ClusterServeFlags(std::move(serve_flags))) {
    worker->Start();
    server.Start();
    api = std::make_unique<ApiClient>(server);
  }
  // Both stop cleanly (exit 0) and the audit is clean.
  void Finish() {
    EXPECT_EQ(server.Stop(), 0);
    EXPECT_EQ(worker->Stop(), 0);
    ExpectAuditClean();
  }

  std::unique_ptr<ServerProcess> worker;
  ServerProcess server;
  std::unique_ptr<ApiClient> api;
};

TEST(ClusterMode, TwoServersWithTheirOwnDataDirsShareEveryPacketAccountAndId) {
  auto worker = ServerProcess::Worker(WorkerFlags());
  worker->Start();
  ServerProcess a(ClusterServeFlags());
  ServerProcess b(ClusterServeFlags());
  a.Start();
  b.Start();
  ASSERT_NE(a.data_dir(), b.data_dir());
  ApiClient api_a(a);
  ApiClient api_b(b);
  for (ApiClient* api : {&api_a, &api_b}) {
    const Reply ready = api->Get("/readyz");
    ASSERT_EQ(ready.status, 200) << Describe(ready);
    for (const char* check : {R"("store":"ok")", R"("kafka":"ok")", R"("mariadb_primary":"ok")"}) {
      EXPECT_NE(ready.body.find(check), std::string::npos) << ready.body;
    }
  }
  // Accounts and ids come from the shared ledger: users and packets made on either server are
  // distinct and visible on both.
  const std::int64_t sender = api_a.CreateFundedUser("sender", 100000);
  const std::int64_t other = api_b.CreateFundedUser("other", 1000);
  EXPECT_NE(sender, other);
  std::set<std::string> ids;
  for (int i = 0; i < 6; ++i) {
    ApiClient& api = i % 2 == 0 ? api_a : api_b;
    ids.insert(api.CreatePacket(sender, R"({"total_cents":100,"count":2,"kind":"equal"})"));
  }
  EXPECT_EQ(ids.size(), 6u);

  // Created on A, grabbed on B; the same user again on A: 409 with the same amount.
  const std::string small = api_a.CreatePacket(
      sender, R"({"total_cents":1000,"count":5,"kind":"lucky","greeting":"cluster"})");
  const std::string small_grab = "/v1/packets/" + small + "/grab";
  const std::int64_t first_user = RunUserBase() + 1'000;
  const Reply first = api_b.Post(small_grab, "", first_user);
  ASSERT_EQ(first.status, 200) << Describe(first);
  EXPECT_EQ(first.Int("seq"), 1);
  const Reply repeat = api_a.Post(small_grab, "", first_user);
  ASSERT_EQ(repeat.status, 409) << Describe(repeat);
  EXPECT_EQ(repeat.Int("amount_cents"), first.Int("amount_cents"));

  // A 100-share packet created on B, stampeded by 200 users, every other one on each server.
  const std::string hot = api_b.CreatePacket(
      sender, R"({"total_cents":10000,"count":100,"kind":"lucky","greeting":"stampede"})");
  const std::int64_t crowd = RunUserBase() + 1'100;
  const std::vector<Reply> replies = SimultaneousGrabs(
      200, crowd, hot, [&](int i) -> const ServerProcess& { return i % 2 == 0 ? a : b; });
  StampedeTally tally;
  ASSERT_NO_FATAL_FAILURE(TallyGrabs(replies, crowd, hot, 100, &tally));
  ASSERT_NO_FATAL_FAILURE(ExpectEveryShareTakenOnce(tally, 200, 100, 10000));
  for (ApiClient* api : {&api_a, &api_b}) {
    const json::object details = api->GetPacket(hot);
    EXPECT_EQ(details.at("status").as_string(), "exhausted");
    EXPECT_EQ(GrabsByUser(details), tally.winners);
  }
  // The worker credits every grab, once; the balances are read from the replica.
  ExpectCredited(api_a, tally.winners);
  std::int64_t last = 0;
  EXPECT_TRUE(WaitForBalance(api_b, first_user, first.Int("amount_cents"), kCreditWait, &last))
      << last;

  // Expiry: the server holding the sweeper lease closes the packet and refunds what was left.
  const std::string expiring = api_a.CreatePacket(
      sender, R"({"total_cents":1000,"count":10,"kind":"lucky","expires_in_s":1})");
  std::int64_t expiring_grabbed = 0;
  for (std::int64_t user = RunUserBase() + 1'400; user < RunUserBase() + 1'403; ++user) {
    const Reply reply = api_b.Post("/v1/packets/" + expiring + "/grab", "", user);
    ASSERT_EQ(reply.status, 200) << Describe(reply);
    expiring_grabbed += reply.Int("amount_cents");
  }
  json::object details;
  ASSERT_NO_FATAL_FAILURE(WaitForPacketStatus(api_b, expiring, "refunded", &details));
  EXPECT_EQ(details.at("refund_cents").as_int64(), 1000 - expiring_grabbed);
  const std::int64_t expected = 100000 - 6 * 100 - 1000 - 10000 - expiring_grabbed;
  EXPECT_TRUE(WaitForBalance(api_a, sender, expected, kCreditWait, &last))
      << "sender has " << last << ", expected " << expected;
  EXPECT_EQ(api_b.Post("/v1/packets/" + expiring + "/grab", "", RunUserBase() + 1'500).status, 410);

  EXPECT_EQ(a.Stop(), 0);
  EXPECT_EQ(b.Stop(), 0);
  EXPECT_EQ(worker->Stop(), 0);
  ExpectAuditClean();
}

TEST(ClusterMode, StartupErrorsNameTheServiceThatCannotBeReached) {
  struct Case {
    std::vector<std::string> flags;
    std::string message;
  };
  const std::vector<Case> cases = {
      {{"--mariadb-primary", "127.0.0.1:1"}, "cannot reach MariaDB at 127.0.0.1:1"},
      {{"--kafka-brokers", "127.0.0.1:1"}, "cannot reach Kafka at 127.0.0.1:1"},
      {{"--redis-nodes", "127.0.0.1:1"}, "cannot reach Redis at 127.0.0.1:1"},
  };
  for (const Case& test : cases) {
    std::vector<std::string> arguments{"serve", "--dev", "--host", "127.0.0.1", "--port", "0"};
    for (const auto& flag : ClusterServeFlags(test.flags)) arguments.push_back(flag);
    const CommandResult result = RunRedpacket(arguments, milliseconds(60000));
    EXPECT_EQ(result.exit_code, 1) << result.output;
    EXPECT_NE(result.output.find(test.message), std::string::npos) << result.output;
  }
  std::vector<std::string> arguments{"worker", "--port", "0"};
  for (const auto& flag : WorkerFlags({"--kafka-brokers", "127.0.0.1:1"}))
    arguments.push_back(flag);
  const CommandResult result = RunRedpacket(arguments, milliseconds(60000));
  EXPECT_EQ(result.exit_code, 1) << result.output;
  EXPECT_NE(result.output.find("cannot reach Kafka at 127.0.0.1:1"), std::string::npos)
      << result.output;
}

TEST(ClusterMode, AWorkerKilledMidStampedeCreditsEveryGrabExactlyOnce) {
  ClusterCase run({}, {"--worker-batch", "50"});
  auto& worker = run.worker;
  ServerProcess& server = run.server;
  ApiClient& api = *run.api;
  const std::int64_t sender = api.CreateFundedUser("sender", 100000);
  const std::string hot = api.CreatePacket(sender, R"({"total_cents":30000,"count":300})");
  const std::int64_t crowd = RunUserBase() + 2'000;
  std::vector<Reply> replies;
  std::thread stampede([&] {
    replies =
        SimultaneousGrabs(400, crowd, hot, [&](int) -> const ServerProcess& { return server; });
  });
  // Mid-stampede, once the worker has committed a batch or more: kill -9 (between or inside
  // batches), then a new worker. The restart is from this thread: a child dies with the thread
  // that started it (PR_SET_PDEATHSIG).
  EXPECT_TRUE(WaitUntil([&] { return MetricOf(*worker, "redpacket_worker_batches_total") >= 1; },
                        milliseconds(20000)));
  worker->Kill();
  std::this_thread::sleep_for(milliseconds(300));
  worker->Start();
  stampede.join();
  StampedeTally tally;
  ASSERT_NO_FATAL_FAILURE(TallyGrabs(replies, crowd, hot, 300, &tally));
  ASSERT_NO_FATAL_FAILURE(ExpectEveryShareTakenOnce(tally, 400, 300, 30000));
  ExpectCredited(api, tally.winners);
  run.Finish();
}

TEST(ClusterMode, PoisonEventsAreSetAsideAndTheWorkerGoesOn) {
  ClusterCase run;
  auto& worker = run.worker;
  ApiClient& api = *run.api;
  const double before = MetricOf(*worker, "redpacket_worker_dead_lettered_total");
  // Straight onto the topic: bytes that are not an event, and a well-formed grab of a packet
  // that does not exist (the ledger refuses to credit money it cannot account for).
  {
    bus::KafkaSinkOptions options;
    options.brokers = KafkaBrokers();
    options.topic = ClusterTopic();
    auto sink = bus::KafkaSink::Connect(options, milliseconds(10000));
    std::promise<bool> raw;
    sink->PublishRaw(
        "7", "{not json", [&] { raw.set_value(true); },
        [&](domain::Error) { raw.set_value(false); });
    ASSERT_TRUE(raw.get_future().get());
    std::promise<bool> impossible;
    sink->Publish(
        domain::LedgerEvent{domain::LedgerEvent::Type::kGrab, 999'999'999, 7, 5, 1, 1},
        [&] { impossible.set_value(true); }, [&](domain::Error) { impossible.set_value(false); });
    ASSERT_TRUE(impossible.get_future().get());
    sink->Close();
  }
  // The partitions are not blocked: a real grab after them is credited.
  const std::int64_t sender = api.CreateFundedUser("sender", 1000);
  const std::string packet = api.CreatePacket(sender, R"({"total_cents":500,"count":5})");
  const Reply grab = api.Post("/v1/packets/" + packet + "/grab", "", RunUserBase() + 3'000);
  ASSERT_EQ(grab.status, 200) << Describe(grab);
  std::int64_t last = 0;
  EXPECT_TRUE(
      WaitForBalance(api, RunUserBase() + 3'000, grab.Int("amount_cents"), kCreditWait, &last))
      << last;
  EXPECT_TRUE(WaitUntil(
      [&] { return MetricOf(*worker, "redpacket_worker_dead_lettered_total") >= before + 2; },
      milliseconds(15000)))
      << worker->Log();
  EXPECT_FALSE(worker->PollExit().has_value());  // still running
  EXPECT_EQ(run.server.Stop(), 0);
  EXPECT_EQ(worker->Stop(), 0);
  // Both are kept whole in the ledger (dead_letters), and the audit reports each: money decided
  // and never credited is a violation until an operator has dealt with it.
  const CommandResult audit = ClusterAudit();
  EXPECT_NE(audit.exit_code, 0) << audit.output;
  EXPECT_NE(audit.output.find("undecodable"), std::string::npos) << audit.output;
  EXPECT_NE(audit.output.find("g-999999999-7"), std::string::npos) << audit.output;
  // Dealt with (nothing to credit: neither is money): removed, and the audit is clean again.
  const std::string primary = MariaDbPrimary();
  Shell("mariadb --host=127.0.0.1 --port=" + primary.substr(primary.find(':') + 1) +
        " --user=redpacket --password=redpacket redpacket -e 'DELETE FROM dead_letters' 2>&1");
  ExpectAuditClean();
}

TEST(ClusterMode, AGrabWhileTheBrokerIsDownIsAnsweredAndCreditedOnceItIsBack) {
  ClusterCase run;
  ServerProcess& server = run.server;
  ApiClient& api = *run.api;
  const std::int64_t sender = api.CreateFundedUser("sender", 1000);
  const std::string packet = api.CreatePacket(sender, R"({"total_cents":600,"count":3})");
  const std::int64_t user = RunUserBase() + 4'000;
  // Kafka goes away. The broker is off the grab's path: the script records the grab and its
  // event in the packet's slot, a replica has both, the client gets 200. Still ready: nothing
  // a request needs is missing, publication only waits.
  RunServiceScript("kafka", {"down"});
  const Reply grab = api.Post("/v1/packets/" + packet + "/grab", "", user);
  ASSERT_EQ(grab.status, 200) << Describe(grab);
  const Reply ready = api.Get("/readyz");
  EXPECT_EQ(ready.status, 200) << Describe(ready);
  EXPECT_NE(ready.body.find("\"kafka\""), std::string::npos) << "the broker's state is shown";
  // A repeat answers 409 with that share, and writes nothing.
  const Reply again = api.Post("/v1/packets/" + packet + "/grab", "", user);
  EXPECT_EQ(again.status, 409) << Describe(again);
  EXPECT_EQ(again.Int("amount_cents"), grab.Int("amount_cents"));
  std::this_thread::sleep_for(milliseconds(2000));
  RunServiceScript("kafka", {"up"});
  // The relay delivers it once the broker is back; the worker credits it once.
  std::int64_t last = 0;
  EXPECT_TRUE(WaitForBalance(api, user, grab.Int("amount_cents"), milliseconds(60000), &last))
      << "balance " << last << "; server log:\n"
      << server.Log();
  run.Finish();
}

TEST(ClusterMode, ABrokerRestartMidStampedeLosesNoAcknowledgedGrab) {
  ClusterCase run;
  ServerProcess& server = run.server;
  ApiClient& api = *run.api;
  const std::int64_t sender = api.CreateFundedUser("sender", 100000);
  const std::string packet = api.CreatePacket(sender, R"({"total_cents":50000,"count":1000})");
  // The broker is off the grab's path: 200 and 410 only (a 503 is counted, not expected).
  OutageCrowd crowd(server, packet, RunUserBase() + 10'000);
  EXPECT_TRUE(WaitUntil([&] { return crowd.acknowledged() >= 100; }, milliseconds(30000)));
  RunServiceScript("kafka", {"down"});
  std::this_thread::sleep_for(milliseconds(1000));
  RunServiceScript("kafka", {"up"});
  crowd.Join();
  EXPECT_TRUE(crowd.unexpected.empty()) << crowd.unexpected.front();
  // Every share Redis handed out is credited: each was recorded with its event in the outbox,
  // and the relay published it, at once or once the broker was back.
  const auto grabs = GrabsByUser(api.GetPacket(packet));
  EXPECT_EQ(grabs.size(), 1000u);
  for (const auto& [user, record] : crowd.winners) {
    ASSERT_EQ(grabs.count(user), 1u) << "acknowledged grab of user " << user << " lost";
    EXPECT_EQ(grabs.at(user).amount_cents, record.amount_cents);
  }
  ExpectCredited(api, grabs);
  run.Finish();
}

TEST(ClusterMode, AKilledRedisMasterLeftDeadLosesNoAcknowledgedGrab) {
  ClusterCase run({"--max-count", "20000"});
  ServerProcess& server = run.server;
  ApiClient& api = *run.api;
  const std::int64_t sender = api.CreateFundedUser("sender", 2000000);
  const std::string packet = api.CreatePacket(sender, R"({"total_cents":2000000,"count":20000})");
  const RedisNode master = MasterOfPacket(packet);

  OutageCrowd crowd(server, packet, RunUserBase() + 20'000);
  EXPECT_TRUE(WaitUntil([&] { return crowd.acknowledged() >= 100; }, milliseconds(30000)));
  crowd.MarkOutage();
  ASSERT_EQ(::kill(master.pid, SIGKILL), 0) << master.address;
  // Until grabs succeed again (and a second more), or 30 s.
  WaitUntil([&] { return crowd.FirstOkAfterOutage().has_value(); }, milliseconds(30000));
  std::this_thread::sleep_for(milliseconds(1000));
  crowd.Stop();
  crowd.Join();
  EXPECT_TRUE(crowd.unexpected.empty()) << crowd.unexpected.front();
  const std::optional<milliseconds> recovered = crowd.FirstOkAfterOutage();
  ASSERT_TRUE(recovered) << "no grab succeeded after the kill of " << master.address;
  EXPECT_LT(recovered->count(), 10000)
      << "grabs answered 200 again only after " << recovered->count() << " ms";
  std::cout << "killed " << master.address << "; grabs answered 200 again after "
            << recovered->count() << " ms\n";
  // No share twice, no user twice, every acknowledged grab in Redis and credited.
  const auto grabs = GrabsByUser(api.GetPacket(packet));
  std::set<std::int64_t> seqs;
  for (const auto& [user, record] : grabs) {
    EXPECT_TRUE(seqs.insert(record.seq).second) << record.seq;
  }
  for (const auto& [user, record] : crowd.winners) {
    ASSERT_EQ(grabs.count(user), 1u) << "acknowledged grab of user " << user << " lost";
    EXPECT_EQ(grabs.at(user).amount_cents, record.amount_cents);
  }
  ExpectCredited(api, grabs);
  run.Finish();
  RestoreRedisCluster();
}

TEST(ClusterMode, ReadsAnswerWithTheReplicaDownAndGrabsWithThePrimaryDown) {
  ClusterCase run;
  ApiClient& api = *run.api;
  const std::int64_t sender = api.CreateFundedUser("sender", 10000);
  const std::string packet = api.CreatePacket(sender, R"({"total_cents":1000,"count":10})");

  // The replica stops: balance, history and details still answer (from the primary).
  RunServiceScript("mariadb", {"stop", "replica"});
  EXPECT_EQ(api.GetBalance(sender).total(), 9000);
  EXPECT_EQ(api.Get("/v1/users/" + std::to_string(sender) + "/history?kind=sent", sender).status,
            200);
  EXPECT_EQ(api.GetPacket(packet).at("remaining_count").as_int64(), 10);
  RunServiceScript("mariadb", {"start", "replica"});

  // The primary stops: grabs are still decided in Redis and acknowledged by Kafka; the worker
  // credits them once the primary is back.
  RunServiceScript("mariadb", {"stop", "primary"});
  std::map<std::int64_t, GrabRecord> winners;
  for (std::int64_t user = RunUserBase() + 5'000; user < RunUserBase() + 5'005; ++user) {
    const Reply reply = api.Post("/v1/packets/" + packet + "/grab", "", user);
    ASSERT_EQ(reply.status, 200) << Describe(reply);
    winners[user] = GrabRecord{user, reply.Int("amount_cents"), reply.Int("seq")};
  }
  RunServiceScript("mariadb", {"start", "primary"});
  ExpectCredited(api, winners);
  run.Finish();
}

}  // namespace
}  // namespace redpacket::e2e
