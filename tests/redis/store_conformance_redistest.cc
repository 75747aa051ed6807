// The PacketStore contract, run against both engines: the same stampede, repeat, exclusive, expiry
// and unknown-id cases on the memory store and on RedisStore over the real cluster. Then the
// Redis store's own cases (bloom filter, big and recovered packets, script-level retry) and, last,
// kill -9 of the master owning a hot packet in a stampede, left dead. Blocking test code.
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <fstream>
#include <functional>
#include <future>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <thread>
#include <vector>

#include "domain/packet.h"
#include "domain/random.h"
#include "lease/memory/memory_lease.h"
#include "net/redis/cluster_client.h"
#include "net/redis/slot.h"
#include "redis_test_cluster.h"
#include "store/memory/memory_store.h"
#include "store/redis/bloom.h"
#include "store/redis/keys.h"
#include "store/redis/redis_store.h"
#include "store/redis/script_replies.h"
#include "store_test_support.h"
#include "tests/store/store_conformance.h"

namespace redpacket::store {
namespace {

// =============================== the conformance suite ===============================

INSTANTIATE_TYPED_TEST_SUITE_P(Redis, StoreConformanceTest,
                               ::testing::Types<RedisStoreUnderTest>, StoreName);

// =============================== the Redis store's own cases ===============================

class RedisStoreTest : public ::testing::Test {
 protected:
  RedisStoreUnderTest under_test_;
  AdminClient admin_;
  redis::KeySpace keys_{under_test_.options().key_prefix};
};

TEST_F(RedisStoreTest, UnknownIdsAreRejectedByTheBloomFilterWithoutPacketKeys) {
  const auto before = under_test_.redis_store().counters();
  const GrabResult unknown = GrabNow(under_test_, 424242, 1);
  EXPECT_EQ(unknown.code, ErrorCode::kNotFound);
  EXPECT_EQ(unknown.message, "no such packet");
  EXPECT_FALSE(unknown.not_held) << "definitive: the caller skips the ledger";
  EXPECT_EQ(under_test_.redis_store().counters().bloom_rejections, before.bloom_rejections + 1);

  // Known to the filter but without keys (TTL ran out): not held, the ledger decides.
  const domain::PacketId id = under_test_.NewPacketId();
  ASSERT_TRUE(AddNow(under_test_, MakePacket(id, {5, 6})).ok());
  const redis::PacketKeys keys = keys_.ForPacket(id);
  ASSERT_TRUE(admin_.Command(keys.meta, {"DEL", keys.meta, keys.shares, keys.grabs}).ok());
  const GrabResult vanished = GrabNow(under_test_, id, 1);
  EXPECT_EQ(vanished.code, ErrorCode::kNotFound);
  EXPECT_TRUE(vanished.not_held) << vanished.message;
}

// The sweeper lease's fencing token reaches the store: a sweeper that lost the lease (paused
// past its ttl while another took over) is refused by Redis, not by its own clock.
TEST_F(RedisStoreTest, AFencedSweepRefusesATokenLowerThanTheHighestSeen) {
  std::chrono::steady_clock::time_point lease_now{};
  lease::MemoryLease lease([&] { return lease_now; });
  auto old_token = lease.TryAcquire("server-a", 10s);
  ASSERT_TRUE(old_token.ok() && *old_token);
  lease_now += 11s;  // server-a stalls past its ttl; server-b takes over
  auto new_token = lease.TryAcquire("server-b", 10s);
  ASSERT_TRUE(new_token.ok() && *new_token);

  redis::RedisStore& store = under_test_.redis_store();
  const domain::PacketId first = under_test_.NewPacketId();
  const domain::PacketId second = under_test_.NewPacketId();
  ASSERT_TRUE(AddNow(under_test_, MakePacket(first, {10, 20}, 60s)).ok());
  const auto later = domain::Clock::now() + 61s;

  auto current = store.FencedSweep(later, **new_token);
  ASSERT_TRUE(current.ok()) << current.error().message;
  EXPECT_EQ(current->closed, 1u);
  const auto fence = admin_.Command(keys_.expiry_fence(), {"GET", keys_.expiry_fence()});
  ASSERT_TRUE(fence.ok()) << Describe(fence);
  EXPECT_EQ(fence.reply().string(), std::to_string(**new_token));

  ASSERT_TRUE(AddNow(under_test_, MakePacket(second, {30}, 60s)).ok());
  auto stale = store.FencedSweep(later, **old_token);
  ASSERT_FALSE(stale.ok()) << "server-a's sweep ran with a superseded token";
  EXPECT_EQ(stale.error().code, ErrorCode::kConflict) << stale.error().message;
  const auto status = admin_.Command(keys_.ForPacket(second).meta,
                                     {"HGET", keys_.ForPacket(second).meta, "status"});
  ASSERT_TRUE(status.ok()) << Describe(status);
  EXPECT_EQ(status.reply().string(), "open") << "the fenced sweep closed a packet";

  auto renewed = store.FencedSweep(later, **new_token);  // the holder itself goes on
  ASSERT_TRUE(renewed.ok()) << renewed.error().message;
  EXPECT_EQ(renewed->closed, 1u);
  EXPECT_EQ(under_test_.sink.events(LedgerEvent::Type::kRefund).size(), 2u);
}

TEST_F(RedisStoreTest, KeysLiveUntilExpiryPlusGraceAndMetadataIsCachedPerThread) {
  const domain::PacketId id = under_test_.NewPacketId();
  auto packet = MakePacket(id, {1, 2, 3}, 600s);
  packet.spec.receiver_id = std::nullopt;
  ASSERT_TRUE(AddNow(under_test_, packet).ok());
  ASSERT_EQ(GrabNow(under_test_, id, 1).code, ErrorCode::kOk);
  const redis::PacketKeys keys = keys_.ForPacket(id);
  const std::int64_t expected_ms =
      domain::ToUnixMillis(packet.expires_at) + under_test_.options().key_grace.count();
  for (const std::string* key : {&keys.meta, &keys.shares, &keys.grabs}) {
    const auto at = admin_.Command(*key, {"PEXPIRETIME", *key});
    ASSERT_TRUE(at.ok()) << Describe(at);
    EXPECT_EQ(at.reply().integer(), expected_ms) << *key;
  }
  const auto hits = under_test_.redis_store().counters().metadata_cache_hits;
  ASSERT_EQ(GrabNow(under_test_, id, 2).code, ErrorCode::kOk);
  EXPECT_EQ(under_test_.redis_store().counters().metadata_cache_hits, hits + 1)
      << "the first grab on this thread cached the metadata";
}

TEST_F(RedisStoreTest, AMillionSharePacketLoadsInChunksAndGrabs) {
  const domain::PacketId id = under_test_.NewPacketId();
  domain::SeededRandom random(42);
  constexpr std::int64_t kCount = 1'000'000;
  const auto shares = domain::SplitLucky(100'000'000, kCount, random);
  const auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(AddNow(under_test_, MakePacket(id, shares)).ok());
  std::cout << "loaded 1,000,000 shares in "
            << std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::steady_clock::now() - start)
                   .count()
            << " ms\n";
  const GrabResult first = GrabNow(under_test_, id, 1);
  ASSERT_EQ(first.code, ErrorCode::kOk) << first.message;
  EXPECT_EQ(first.amount_cents, shares[0]);
  EXPECT_EQ(first.remaining_count, kCount - 1);
  const RedisPacketState state = ReadPacket(admin_, keys_, id);
  EXPECT_EQ(state.status, "open");
  EXPECT_EQ(state.shares_left, kCount - 1);
  // Free the cluster's memory now rather than in a day.
  const redis::PacketKeys keys = keys_.ForPacket(id);
  EXPECT_TRUE(admin_.Command(keys.meta, {"DEL", keys.meta, keys.shares, keys.grabs}).ok());
}

TEST_F(RedisStoreTest, AnInterruptedLoadResumesWhereItStopped) {
  // Simulates a server that died after create.lua and one chunk: the next Add completes it.
  redis::RedisStoreOptions options = TestOptions();
  options.key_prefix = under_test_.options().key_prefix;
  options.load_chunk = 4;
  const domain::PacketId id = under_test_.NewPacketId();
  const std::vector<domain::Cents> shares{1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  const net::redis::Script create = LoadLua("create.lua");
  const redis::PacketKeys keys = keys_.ForPacket(id);
  // The id in the Bloom filter, as Add's first step would have put it.
  const net::redis::Script bloom_add = LoadLua("bloom_add.lua");
  std::vector<std::string> offsets;
  for (auto offset : redis::BloomBitOffsets(
           id, redis::SizeBloomFilter(options.bloom_capacity, options.bloom_false_positive_rate))) {
    offsets.push_back(std::to_string(offset));
  }
  ASSERT_TRUE(admin_
                  .Eval(bloom_add, {keys_.bloom()},
                        std::vector<std::string_view>(offsets.begin(), offsets.end()))
                  .ok());
  const std::string now = std::to_string(domain::ToUnixMillis(domain::Clock::now()));
  const std::string later = std::to_string(domain::ToUnixMillis(domain::Clock::now() + 3600s));
  const std::string keys_until = std::to_string(domain::ToUnixMillis(domain::Clock::now() + 7200s));
  const auto created = admin_.Eval(
      create, {keys.meta, keys.shares, keys.grabs},
      {"1", "55", "10", "lucky", "", "", now, later, keys_until, "10", "0", "1", "2", "3"});
  ASSERT_TRUE(created.ok()) << Describe(created);
  EXPECT_EQ(GrabNow(under_test_, id, 1).code, ErrorCode::kUnavailable) << "still loading";

  auto packet = MakePacket(id, shares);
  packet.spec.total_cents = 55;
  RedisStoreUnderTest resumed(options, 1);
  ASSERT_TRUE(AddNow(resumed, packet).ok());
  const RedisPacketState state = ReadPacket(admin_, keys_, id);
  EXPECT_EQ(state.status, "open");
  EXPECT_EQ(state.shares_left, 10);
  const auto all = admin_.Command(keys.shares, {"LRANGE", keys.shares, "0", "-1"});
  ASSERT_TRUE(all.ok());
  std::vector<domain::Cents> loaded;
  for (const auto& item : all.reply().array()) loaded.push_back(std::stoll(item.string()));
  EXPECT_EQ(loaded, shares) << "no share pushed twice, none missing, in order";
}

TEST_F(RedisStoreTest, TheGrabScriptRecognizesAResendOfItsOwnRequest) {
  const domain::PacketId id = under_test_.NewPacketId();
  ASSERT_TRUE(AddNow(under_test_, MakePacket(id, {11, 22})).ok());
  const net::redis::Script grab = LoadLua("grab.lua");
  const redis::PacketKeys keys = keys_.ForPacket(id);
  const std::string now = std::to_string(domain::ToUnixMillis(domain::Clock::now()));
  auto send = [&](const char* user, const char* token) {
    const std::string& outbox = keys_.OutboxOf(keys_.SlotOf(id));
    const std::string packet = std::to_string(id);
    const auto result = admin_.Eval(grab, {keys.meta, keys.shares, keys.grabs, outbox},
                                    {user, now, token, "0", packet});
    EXPECT_TRUE(result.ok()) << Describe(result);
    return redis::ParseGrabReply(result.reply());
  };
  const auto first = send("5", "aaaa");
  ASSERT_TRUE(first);
  EXPECT_EQ(first->outcome, redis::GrabReply::Outcome::kOk);
  const auto resent = send("5", "aaaa");  // what the client sends again after a lost connection
  ASSERT_TRUE(resent);
  EXPECT_EQ(resent->outcome, redis::GrabReply::Outcome::kConflict);
  EXPECT_TRUE(resent->same_request);
  EXPECT_EQ(redis::ToGrabResult(*resent).code, ErrorCode::kOk);
  EXPECT_EQ(redis::ToGrabResult(*resent).amount_cents, first->amount_cents);
  const auto other = send("5", "bbbb");  // a second request of the same user
  ASSERT_TRUE(other);
  EXPECT_FALSE(other->same_request);
  EXPECT_EQ(redis::ToGrabResult(*other).code, ErrorCode::kConflict);
  EXPECT_EQ(ReadPacket(admin_, keys_, id).grabs.size(), 1u);
}

TEST_F(RedisStoreTest, ABloomFilterSizedDifferentlyIsRefusedAtConnect) {
  redis::RedisStoreOptions options = TestOptions();
  options.key_prefix = under_test_.options().key_prefix;  // same filter in Redis
  options.bloom_capacity *= 2;
  IoThreads io(1);
  redis::RedisStore store(io.contexts(), ClusterNodes(), options);
  std::promise<domain::Status> connected;
  store.Connect([&](domain::Status status) { connected.set_value(std::move(status)); });
  const domain::Status status = Await(connected.get_future(), "Connect");
  EXPECT_FALSE(status.ok());
  if (!status.ok()) {
    EXPECT_NE(status.error().message.find("Bloom filter"), std::string::npos);
  }
  io.Stop();
}

// =============================== failover (last: it kills a master)
// ===============================

// Grabs with a fixed number in flight, spread over the store's I/O threads; each answer issues
// the next grab from the thread it arrived on, with a new user.
class Stampede {
 public:
  struct Outcome {
    domain::UserId user = 0;
    GrabResult result;
    std::chrono::steady_clock::time_point issued;
    std::chrono::steady_clock::time_point answered;
  };

  Stampede(RedisStoreUnderTest& under_test, domain::PacketId packet_id)
      : under_test_(under_test), packet_id_(packet_id) {}

  void Start(int in_flight) {
    for (int i = 0; i < in_flight; ++i) {
      under_test_.Submit(i, [this] { IssueOne(); });
    }
  }
  // Stops issuing and waits for every grab in flight to answer.
  bool StopAndWait(std::chrono::seconds limit) {
    stop_ = true;
    std::unique_lock lock(mutex_);
    return idle_.wait_for(lock, limit, [&] { return in_flight_ == 0; });
  }
  std::vector<Outcome> outcomes() {
    std::lock_guard lock(mutex_);
    return outcomes_;
  }
  int ok() const { return ok_.load(); }
  bool exhausted() const { return exhausted_.load(); }

 private:
  void IssueOne() {
    if (stop_) return;
    const domain::UserId user = next_user_++;
    const auto issued = std::chrono::steady_clock::now();
    {
      std::lock_guard lock(mutex_);
      ++in_flight_;
    }
    under_test_.store().Grab(
        packet_id_, user, domain::Clock::now(), [this, user, issued](GrabResult result) {
          if (result.code == ErrorCode::kOk) ++ok_;
          if (result.code == ErrorCode::kGone) exhausted_ = true;
          const bool done = result.code == ErrorCode::kGone;
          {
            std::lock_guard lock(mutex_);
            outcomes_.push_back(
                {user, std::move(result), issued, std::chrono::steady_clock::now()});
          }
          if (!done) IssueOne();
          std::lock_guard lock(mutex_);
          if (--in_flight_ == 0) idle_.notify_all();
        });
  }

  RedisStoreUnderTest& under_test_;
  domain::PacketId packet_id_;
  std::atomic<bool> stop_{false};
  std::atomic<domain::UserId> next_user_{1};
  std::atomic<int> ok_{0};
  std::atomic<bool> exhausted_{false};
  std::mutex mutex_;
  std::condition_variable idle_;
  int in_flight_ = 0;
  std::vector<Outcome> outcomes_;
};

// `scripts/redis-cluster up` for the cluster of this test run: restarts a killed node (it rejoins
// as a replica) and returns once the cluster is healthy. Returns the exit status.
int RestoreCluster() {
  const std::string script =
      Env("REDPACKET_REDIS_CLUSTER_SCRIPT", REDPACKET_REDIS_CLUSTER_SCRIPT_DEFAULT);
  const std::string run_dir = Env("REDPACKET_REDIS_RUN_DIR", "");
  const std::string up =
      "'" + script + "' up" + (run_dir.empty() ? "" : " --run-dir '" + run_dir + "'");
  return std::system(up.c_str());  // NOLINT(concurrency-mt-unsafe)
}

// The replicas of `master`, from CLUSTER NODES ("<id> <host:port@bus> <flags> <master id> ...").
std::vector<Endpoint> ReplicasOf(AdminClient& admin, const Endpoint& master) {
  std::vector<Endpoint> replicas;
  const auto id = admin.OnNode(master, {"CLUSTER", "MYID"});
  const auto nodes = admin.OnNode(master, {"CLUSTER", "NODES"});
  if (!id.ok() || !nodes.ok()) return replicas;
  std::istringstream lines(nodes.reply().string());
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream fields(line);
    std::string node_id, address, flags, replicates;
    fields >> node_id >> address >> flags >> replicates;
    if (flags.find("slave") != std::string::npos && replicates == id.reply().string()) {
      if (auto replica = net::redis::ParseEndpoint(address.substr(0, address.find('@')))) {
        replicas.push_back(*replica);
      }
    }
  }
  return replicas;
}

// kill -9 of the master owning a hot packet in the middle of a stampede, and the master stays
// dead. scripts/redis-cluster runs 3 masters, one replica each and a spare replica on one of
// them (decisions.md §12), so both cases must recover by themselves:
//   - the master had one replica: it is promoted with none of its own (grabs answer 503 "not
//     replicated": a 200 now could be lost with one more crash) until Redis migrates the spare
//     to it (replica migration, 5 s after it is seen orphaned);
//   - the master had two (the spare's): one is promoted and the other follows it at once.
// Either way grabs must succeed again within 10 s of the kill, with no share or user twice.
// The parameter is the number of replicas the killed master had.
class RedisStoreFailover : public ::testing::TestWithParam<int> {};

TEST_P(RedisStoreFailover, KillMinusNineOfTheHotPacketsMasterLeftDeadGivesNoShareTwice) {
  redis::RedisStoreOptions options = TestOptions();
  // Grabs in flight when the master dies are re-sent to the promoted replica (same request
  // token) rather than failed, so the retry path runs; the deadline outlasts the failover.
  options.grab_timeout = 12s;
  options.client.command_timeout = 12s;
  RedisStoreUnderTest under_test(options, 2);
  AdminClient admin;
  const redis::KeySpace keys(options.key_prefix);

  // A packet whose master has the wanted number of replicas (ids are hashed over the slots).
  const int wanted_replicas = GetParam();
  domain::PacketId id = 0;
  Endpoint master;
  std::vector<Endpoint> replicas;
  for (int attempt = 0;
       attempt < 200 && replicas.size() != static_cast<std::size_t>(wanted_replicas); ++attempt) {
    id = under_test.NewPacketId();
    const std::string meta_key = keys.ForPacket(id).meta;
    ASSERT_TRUE(admin.Command(meta_key, {"EXISTS", meta_key}).ok());
    master = *admin.client().SlotOwner(net::redis::KeySlot(meta_key));
    replicas = ReplicasOf(admin, master);
  }
  ASSERT_EQ(replicas.size(), static_cast<std::size_t>(wanted_replicas))
      << "no master with " << wanted_replicas << " replica(s); is the cluster whole?";
  constexpr std::int64_t kShares = 6000;
  constexpr domain::Cents kTotal = 600'000;
  domain::SeededRandom random(7);
  const auto shares = domain::SplitLucky(kTotal, kShares, random);
  ASSERT_TRUE(AddNow(under_test, MakePacket(id, shares)).ok());

  const auto info = admin.OnNode(master, {"INFO", "server"});
  ASSERT_TRUE(info.ok()) << Describe(info);
  const std::string& text = info.reply().string();
  const pid_t pid = static_cast<pid_t>(std::stol(text.substr(text.find("process_id:") + 11)));

  Stampede stampede(under_test, id);
  stampede.Start(64);
  const auto started = std::chrono::steady_clock::now();
  while (stampede.ok() < 1500 && std::chrono::steady_clock::now() - started < 20s) {
    std::this_thread::sleep_for(5ms);
  }
  ASSERT_GE(stampede.ok(), 1500) << "the stampede did not get going";
  ASSERT_FALSE(stampede.exhausted());
  ASSERT_EQ(kill(pid, SIGKILL), 0);
  const auto killed_at = std::chrono::steady_clock::now();
  std::cout << "killed master " << master.ToString() << " (pid " << pid << ", " << replicas.size()
            << " replica(s)) after " << stampede.ok() << " grabs\n";
  // Only once the test is over: the next test gets a whole cluster, `up` restarts the node.
  struct RestoreAtExit {
    ~RestoreAtExit() { EXPECT_EQ(RestoreCluster(), 0) << "scripts/redis-cluster up failed"; }
  } restore_at_exit;

  // The takeover: one of the replicas answers ROLE as a master.
  std::optional<std::chrono::steady_clock::time_point> took_over;
  while (!took_over && std::chrono::steady_clock::now() - killed_at < 30s) {
    for (const Endpoint& replica : replicas) {
      const auto role = admin.OnNode(replica, {"ROLE"});
      if (role.ok() && role.reply().IsArray() && role.reply().array()[0].IsString() &&
          role.reply().array()[0].string() == "master") {
        took_over = std::chrono::steady_clock::now();
      }
    }
    if (!took_over) std::this_thread::sleep_for(50ms);
  }
  ASSERT_TRUE(took_over) << "no replica of " << master.ToString() << " took over within 30 s";

  while (!stampede.exhausted() && std::chrono::steady_clock::now() - killed_at < 60s) {
    std::this_thread::sleep_for(20ms);
  }
  const bool settled = stampede.StopAndWait(30s);
  ASSERT_TRUE(settled) << "grabs still unanswered";
  ASSERT_TRUE(stampede.exhausted()) << "the packet was not finished within 60 s of the kill";

  // The answers: no share twice, no user twice, never more than the total.
  std::set<std::int64_t> seqs;
  std::map<domain::UserId, GrabResult> ok_by_user;
  domain::Cents ok_sum = 0;
  std::map<std::string, int> failures;
  std::optional<std::chrono::steady_clock::time_point> first_ok_after_kill;
  for (const auto& outcome : stampede.outcomes()) {
    if (outcome.result.code != ErrorCode::kOk) {
      if (outcome.result.code != ErrorCode::kGone) ++failures[outcome.result.message.substr(0, 40)];
      continue;
    }
    EXPECT_TRUE(seqs.insert(outcome.result.seq).second) << "seq " << outcome.result.seq << " twice";
    EXPECT_TRUE(ok_by_user.emplace(outcome.user, outcome.result).second);
    ok_sum += outcome.result.amount_cents;
    if (outcome.issued > killed_at &&
        (!first_ok_after_kill || outcome.answered < *first_ok_after_kill)) {
      first_ok_after_kill = outcome.answered;
    }
  }
  EXPECT_LE(ok_sum, kTotal);
  ASSERT_TRUE(first_ok_after_kill) << "no grab issued after the kill succeeded";
  auto since_kill = [&](std::chrono::steady_clock::time_point at) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(at - killed_at);
  };
  const auto recovery = since_kill(*first_ok_after_kill);
  std::cout << ok_by_user.size() << " ok; after kill -9: takeover at "
            << since_kill(*took_over).count() << " ms, grabs succeed again at " << recovery.count()
            << " ms; " << under_test.redis_store().counters().grabs_retried_ok
            << " resent grabs found their own first run\n";
  for (const auto& [message, count] : failures)
    std::cout << "  " << count << " x " << message << "\n";
  EXPECT_LT(recovery, 10s) << "the killed master is still dead: the cluster must recover alone";
  EXPECT_NE(0, kill(pid, 0)) << "the killed master came back during the test";

  // What the promoted replica holds: every acknowledged grab, exactly as answered, and the
  // finished packet's grabs add up to the total.
  const RedisPacketState state = ReadPacket(admin, keys, id);
  EXPECT_EQ(state.status, "exhausted");
  EXPECT_EQ(state.shares_left, 0);
  EXPECT_EQ(state.grabs.size(), static_cast<std::size_t>(kShares));
  domain::Cents redis_sum = 0;
  std::set<std::int64_t> redis_seqs;
  for (const auto& [user, grab] : state.grabs) {
    redis_sum += grab.first;
    redis_seqs.insert(grab.second);
  }
  EXPECT_EQ(redis_sum, kTotal);
  EXPECT_EQ(state.grabbed, kTotal);
  EXPECT_EQ(redis_seqs.size(), static_cast<std::size_t>(kShares));
  for (const auto& [user, result] : ok_by_user) {
    auto it = state.grabs.find(user);
    ASSERT_NE(it, state.grabs.end()) << "acknowledged grab of user " << user << " was lost";
    EXPECT_EQ(it->second.first, result.amount_cents) << user;
    EXPECT_EQ(it->second.second, result.seq) << user;
  }
  // And each acknowledged grab has its event, recorded with it in the slot's outbox (on the
  // promoted replica): handed to the relay, or (a resend's 200: the first run recorded it, its
  // reply was lost) waiting there for the relay's recovery.
  std::set<domain::UserId> evented;
  for (const auto& event : under_test.sink.events(LedgerEvent::Type::kGrab)) {
    evented.insert(event.user_id);
  }
  const int slot = keys.SlotOf(id);
  const std::string& outbox = keys.OutboxOf(slot);
  const auto recorded = admin.Command(outbox, {"XRANGE", outbox, "-", "+"});
  ASSERT_TRUE(recorded.ok()) << Describe(recorded);
  auto entries = redis::ParseOutboxEntries(recorded.reply(), slot);
  ASSERT_TRUE(entries.ok()) << entries.error().message;
  for (const auto& entry : *entries) {
    if (entry.event.packet_id == id) evented.insert(entry.event.user_id);
  }
  for (const auto& [user, result] : ok_by_user) EXPECT_TRUE(evented.contains(user)) << user;

  const redis::PacketKeys packet_keys = keys.ForPacket(id);
  EXPECT_TRUE(admin
                  .Command(packet_keys.meta,
                           {"DEL", packet_keys.meta, packet_keys.shares, packet_keys.grabs})
                  .ok());
}

INSTANTIATE_TEST_SUITE_P(KilledMasterReplicas, RedisStoreFailover, ::testing::Values(1, 2),
                         [](const ::testing::TestParamInfo<int>& info) {
                           return info.param == 1 ? std::string("OneReplica")
                                                  : std::string("TwoReplicas");
                         });

}  // namespace
}  // namespace redpacket::store
