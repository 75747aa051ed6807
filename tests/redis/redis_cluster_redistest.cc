// The Redis Cluster client against the real 3+3 cluster of scripts/redis-cluster (ctest starts it):
// routing across slots, pipelining at volume, EVALSHA/NOSCRIPT, batched WAIT, MOVED, ASK during a
// real slot migration, timeouts, and recovery after kill -9 of a master. Blocking test code.
#include <gtest/gtest.h>
#include <signal.h>

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <map>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "net/redis/cluster_client.h"
#include "net/redis/slot.h"
#include "tests/support/io_loop.h"
#include "redis_test_cluster.h"

namespace redpacket::net::redis {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

std::string Env(const char* name, const std::string& fallback) {
  const char* value = std::getenv(name);  // NOLINT(concurrency-mt-unsafe): single-threaded test
  return value != nullptr && *value != '\0' ? value : fallback;
}

// REDPACKET_REDIS_NODES, else the ports of scripts/redis-cluster from REDPACKET_REDIS_BASE_PORT.
std::vector<Endpoint> ClusterNodes() { return redis_test::RedisClusterNodes(); }

bool RunUntil(asio::io_context& io, const std::function<bool()>& done,
              std::chrono::milliseconds limit = 10s) {
  return testing_support::RunUntil(io, done, limit);
}
using testing_support::RunFor;

std::string Describe(const Result& result) {
  return result.ok() ? result.reply().DebugString() : result.error().ToString();
}

// A unique suffix per test run, so reruns against a kept cluster do not see old keys.
std::string RunId() {
  static const std::string id = std::to_string(std::random_device{}());
  return id;
}

class RedisClusterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    nodes_ = ClusterNodes();
    client_ = MakeClient({nodes_[0]});
    std::optional<std::optional<Error>> connected;
    client_->Connect([&](std::optional<Error> error) { connected.emplace(std::move(error)); });
    ASSERT_TRUE(RunUntil(io_, [&] { return connected.has_value(); }));
    ASSERT_FALSE(connected->has_value())
        << (*connected)->ToString() << " (is scripts/redis-cluster up running?)";
  }

  std::unique_ptr<ClusterClient> MakeClient(std::vector<Endpoint> seeds) {
    ClusterClientOptions options;
    options.seeds = std::move(seeds);
    options.command_timeout = 2s;
    return std::make_unique<ClusterClient>(io_, options);
  }

  // Issues one command and runs the io_context until it completes.
  Result Run(const std::function<void(Callback)>& issue, std::chrono::milliseconds limit = 10s) {
    std::optional<Result> result;
    issue([&](Result r) { result.emplace(std::move(r)); });
    if (!RunUntil(
            io_, [&] { return result.has_value(); }, limit)) {
      ADD_FAILURE() << "no callback within " << limit.count() << " ms";
      return Error{ErrorKind::kTimeout, "test gave up"};
    }
    return *result;
  }

  Result Command(std::string_view key, std::initializer_list<std::string_view> argv,
                 CommandOptions options = {}) {
    return Run([&](Callback done) { client_->Execute(key, argv, std::move(done), options); });
  }

  Result OnNode(const Endpoint& node, std::initializer_list<std::string_view> argv) {
    return Run([&](Callback done) { client_->ExecuteOnNode(node, argv, std::move(done)); });
  }

  std::string NodeId(const Endpoint& node) {
    const Result id = OnNode(node, {"CLUSTER", "MYID"});
    EXPECT_TRUE(id.ok()) << Describe(id);
    return id.ok() ? id.reply().string() : "";
  }

  // The replica of the master that owns `slot`, from CLUSTER NODES ("<id> <host:port@bus>
  // <flags> <master id> ..."). Not CLUSTER SLOTS: it hides replicas whose offset, as gossiped,
  // is still 0.
  std::optional<Endpoint> ReplicaOf(int slot) {
    const Endpoint master = *client_->SlotOwner(slot);
    const std::string master_id = NodeId(master);
    const Result nodes = OnNode(master, {"CLUSTER", "NODES"});
    if (!nodes.ok()) return std::nullopt;
    std::istringstream lines(nodes.reply().string());
    std::string line;
    while (std::getline(lines, line)) {
      std::istringstream fields(line);
      std::string id, address, flags, replicates;
      fields >> id >> address >> flags >> replicates;
      if (flags.find("slave") != std::string::npos && replicates == master_id) {
        return ParseEndpoint(address.substr(0, address.find('@')));
      }
    }
    return std::nullopt;
  }

  asio::io_context io_;
  std::vector<Endpoint> nodes_;
  std::unique_ptr<ClusterClient> client_;
};

TEST_F(RedisClusterTest, DiscoversTheClusterFromAnyOneReachableSeed) {
  auto client = MakeClient({{"127.0.0.1", 1}, nodes_[4]});  // a dead seed, then a replica
  std::optional<std::optional<Error>> connected;
  client->Connect([&](std::optional<Error> error) { connected.emplace(std::move(error)); });
  ASSERT_TRUE(RunUntil(io_, [&] { return connected.has_value(); }));
  ASSERT_FALSE(connected->has_value()) << (*connected)->ToString();
  EXPECT_EQ(client->Masters().size(), 3u);
  for (int slot = 0; slot < kSlotCount; ++slot) ASSERT_TRUE(client->SlotOwner(slot)) << slot;
}

TEST_F(RedisClusterTest, SetAndGetAcrossSlots) {
  constexpr int kKeys = 300;
  std::vector<std::string> keys;
  keys.reserve(kKeys);
  std::map<int, int> slots_by_master_port;
  for (int i = 0; i < kKeys; ++i) {
    keys.push_back("test:" + RunId() + ":key:" + std::to_string(i));
    ++slots_by_master_port[client_->SlotOwner(KeySlot(keys.back()))->port];
  }
  EXPECT_EQ(slots_by_master_port.size(), 3u) << "the keys should spread over every master";

  int set_ok = 0;
  for (const std::string& key : keys) {
    client_->Execute(key, {"SET", key, "value-" + key}, [&](const Result& result) {
      EXPECT_TRUE(result.ok() && result.reply().IsStatus()) << Describe(result);
      ++set_ok;
    });
  }
  ASSERT_TRUE(RunUntil(io_, [&] { return set_ok == kKeys; }));

  std::map<std::string, std::string> values;
  for (const std::string& key : keys) {
    client_->Execute(key, {"GET", key}, [&values, key](const Result& result) {
      values[key] = result.ok() ? result.reply().string() : Describe(result);
    });
  }
  ASSERT_TRUE(RunUntil(io_, [&] { return values.size() == kKeys; }));
  for (const std::string& key : keys) EXPECT_EQ(values[key], "value-" + key);

  const Result missing =
      Command("test:" + RunId() + ":missing", {"GET", "test:" + RunId() + ":missing"});
  ASSERT_TRUE(missing.ok());
  EXPECT_TRUE(missing.reply().IsNil());
}

TEST_F(RedisClusterTest, TenThousandConcurrentIncrsAreAllAnsweredInFewWrites) {
  constexpr int kIncrs = 10000;
  constexpr int kCounters = 64;
  std::vector<std::string> counters;
  counters.reserve(kCounters);
  for (int i = 0; i < kCounters; ++i) {
    counters.push_back("test:" + RunId() + ":counter:" + std::to_string(i));
  }
  const ClientCounters before = client_->counters();

  int answered = 0;
  int failed = 0;
  std::int64_t max_seen = 0;
  for (int i = 0; i < kIncrs; ++i) {
    const std::string& key = counters[i % kCounters];
    client_->Execute(key, {"INCR", key}, [&](const Result& result) {
      ++answered;
      if (!result.ok()) {
        ++failed;
        return;
      }
      max_seen = std::max(max_seen, result.reply().integer());
    });
  }
  ASSERT_TRUE(RunUntil(
      io_, [&] { return answered == kIncrs; }, 30s));
  EXPECT_EQ(failed, 0);
  EXPECT_EQ(max_seen, kIncrs / kCounters + (kIncrs % kCounters > 0 ? 1 : 0));

  std::int64_t total = 0;
  int read = 0;
  for (const std::string& key : counters) {
    client_->Execute(key, {"GET", key}, [&](const Result& result) {
      ++read;
      if (result.ok()) total += std::stoll(result.reply().string());
    });
  }
  ASSERT_TRUE(RunUntil(io_, [&] { return read == kCounters; }));
  EXPECT_EQ(total, kIncrs);

  const ClientCounters after = client_->counters();
  const std::uint64_t writes = after.writes - before.writes;
  const std::uint64_t written = after.commands_written - before.commands_written;
  EXPECT_GE(written, static_cast<std::uint64_t>(kIncrs));
  EXPECT_LT(writes, static_cast<std::uint64_t>(kIncrs / 20))
      << "pipelining should pack many INCRs into each write";
  std::cout << "10000 INCRs + 64 GETs in " << writes << " writes\n";
}

TEST_F(RedisClusterTest, EvalShaFallsBackToEvalAfterScriptFlush) {
  // A source nobody loaded before (the nonce changes its SHA1 on every run).
  const Script script("-- " + RunId() + "\nreturn redis.call('INCRBY', KEYS[1], ARGV[1])");
  for (const Endpoint& master : client_->Masters()) {
    const Result flushed = OnNode(master, {"SCRIPT", "FLUSH"});
    ASSERT_TRUE(flushed.ok()) << Describe(flushed);
  }
  const std::string key = "test:" + RunId() + ":script";
  const std::vector<std::string_view> keys{key};
  const std::vector<std::string_view> args{"5"};
  const std::uint64_t fallbacks = client_->counters().noscript_fallbacks;

  Result first = Run([&](Callback done) { client_->Eval(script, keys, args, std::move(done)); });
  ASSERT_TRUE(first.ok()) << Describe(first);
  EXPECT_EQ(first.reply().integer(), 5);
  EXPECT_EQ(client_->counters().noscript_fallbacks, fallbacks + 1);

  Result second = Run([&](Callback done) { client_->Eval(script, keys, args, std::move(done)); });
  ASSERT_TRUE(second.ok()) << Describe(second);
  EXPECT_EQ(second.reply().integer(), 10);
  EXPECT_EQ(client_->counters().noscript_fallbacks, fallbacks + 1) << "EVAL cached the script";
}

TEST_F(RedisClusterTest, ScriptAndTypeErrorsAreNotRetryable) {
  const std::string key = "test:" + RunId() + ":list";
  ASSERT_TRUE(Command(key, {"RPUSH", key, "a"}).ok());
  const Result wrong_type = Command(key, {"INCR", key});
  ASSERT_FALSE(wrong_type.ok());
  EXPECT_EQ(wrong_type.error().kind, ErrorKind::kServer);
  EXPECT_FALSE(wrong_type.error().retryable());
  EXPECT_TRUE(wrong_type.error().message.starts_with("WRONGTYPE")) << wrong_type.error().message;

  const Script failing("return redis.call('INCR', KEYS[1])");
  const std::vector<std::string_view> keys{key};
  const Result script_error =
      Run([&](Callback done) { client_->Eval(failing, keys, {}, std::move(done)); });
  ASSERT_FALSE(script_error.ok());
  EXPECT_EQ(script_error.error().kind, ErrorKind::kServer) << script_error.error().message;
}

TEST_F(RedisClusterTest, EvalAndWaitSharesOneWaitPerBatchAndReachesTheReplica) {
  const Script script("return redis.call('INCR', KEYS[1])");
  constexpr int kScripts = 1000;
  constexpr int kKeys = 50;
  std::vector<std::string> keys;
  keys.reserve(kKeys);
  for (int i = 0; i < kKeys; ++i) {
    keys.push_back("{test:" + RunId() + ":durable:" + std::to_string(i) + "}");
  }
  const ClientCounters before = client_->counters();

  int ok = 0;
  int failed = 0;
  for (int i = 0; i < kScripts; ++i) {
    const std::vector<std::string_view> script_keys{keys[i % kKeys]};
    client_->EvalAndWait(script, script_keys, {}, 1, 1000ms, [&](const Result& result) {
      if (result.ok()) {
        ++ok;
      } else {
        ++failed;
        ADD_FAILURE() << Describe(result);
      }
    });
  }
  ASSERT_TRUE(RunUntil(
      io_, [&] { return ok + failed == kScripts; }, 30s));
  EXPECT_EQ(ok, kScripts);
  const ClientCounters after = client_->counters();
  const std::uint64_t waits = after.waits_written - before.waits_written;
  EXPECT_GE(waits, 1u);
  EXPECT_LT(waits, static_cast<std::uint64_t>(kScripts / 10)) << "one WAIT per batch";
  std::cout << kScripts << " EvalAndWait in " << waits << " WAITs, " << after.writes - before.writes
            << " writes\n";

  // Acknowledged means on the replica: read it there right after the callback.
  const std::string& key = keys[0];
  const std::vector<std::string_view> one_key{key};
  Result last = Run([&](Callback done) {
    client_->EvalAndWait(script, one_key, {}, 1, 1000ms, std::move(done));
  });
  ASSERT_TRUE(last.ok()) << Describe(last);
  const std::optional<Endpoint> replica = ReplicaOf(KeySlot(key));
  ASSERT_TRUE(replica);
  std::optional<Result> on_replica;
  client_->ExecuteOnNode(*replica, {"READONLY"}, [](const Result&) {});
  client_->ExecuteOnNode(*replica, {"GET", key},
                         [&](Result r) { on_replica.emplace(std::move(r)); });
  ASSERT_TRUE(RunUntil(io_, [&] { return on_replica.has_value(); }));
  ASSERT_TRUE(on_replica->ok()) << Describe(*on_replica);
  EXPECT_EQ(on_replica->reply().string(), std::to_string(last.reply().integer()));
}

TEST_F(RedisClusterTest, WaitForMoreReplicasThanExistIsNotReplicated) {
  const Script script("return redis.call('INCR', KEYS[1])");
  const std::string key = "test:" + RunId() + ":three-replicas";
  const std::vector<std::string_view> keys{key};
  // No master has three replicas (one has two: the spare's).
  const Result result = Run([&](Callback done) {
    client_->EvalAndWait(script, keys, {}, /*min_replicas=*/3, 50ms, std::move(done));
  });
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().kind, ErrorKind::kNotReplicated) << result.error().message;
  EXPECT_TRUE(result.error().retryable());
}

TEST_F(RedisClusterTest, FollowsMovedFromAStaleSlotMap) {
  const std::string key = "test:" + RunId() + ":moved";
  const int slot = KeySlot(key);
  const Endpoint owner = *client_->SlotOwner(slot);
  Endpoint wrong;
  for (const Endpoint& master : client_->Masters()) {
    if (!(master == owner)) wrong = master;
  }
  client_->OverrideSlotOwnerForTesting(slot, wrong);
  const std::uint64_t moved = client_->counters().moved;

  const Result set = Command(key, {"SET", key, "v"});
  ASSERT_TRUE(set.ok()) << Describe(set);
  EXPECT_EQ(client_->counters().moved, moved + 1);
  EXPECT_EQ(client_->SlotOwner(slot), owner);
  const Result get = Command(key, {"GET", key});
  ASSERT_TRUE(get.ok());
  EXPECT_EQ(get.reply().string(), "v");
  EXPECT_EQ(client_->counters().moved, moved + 1) << "the map was fixed by the first MOVED";
}

TEST_F(RedisClusterTest, FollowsAskDuringASlotMigrationAndMovedAfterIt) {
  const std::string tag = "{test:" + RunId() + ":ask}";
  const std::string old_key = tag + ":old";
  const std::string new_key = tag + ":new";
  const int slot = KeySlot(tag);
  const Endpoint source = *client_->SlotOwner(slot);
  Endpoint target;
  for (const Endpoint& master : client_->Masters()) {
    if (!(master == source)) target = master;
  }
  const std::string source_id = NodeId(source);
  const std::string target_id = NodeId(target);
  const std::string slot_text = std::to_string(slot);
  ASSERT_TRUE(Command(old_key, {"SET", old_key, "old"}).ok());

  // Begin the migration the way redis-cli --cluster reshard does.
  ASSERT_TRUE(OnNode(target, {"CLUSTER", "SETSLOT", slot_text, "IMPORTING", source_id}).ok());
  ASSERT_TRUE(OnNode(source, {"CLUSTER", "SETSLOT", slot_text, "MIGRATING", target_id}).ok());

  // A key the source does not have is answered with ASK: ASKING + the command go to the target.
  const std::uint64_t asks = client_->counters().asks;
  const Result set_new = Command(new_key, {"SET", new_key, "new"});
  ASSERT_TRUE(set_new.ok()) << Describe(set_new);
  EXPECT_GT(client_->counters().asks, asks);
  const Result get_new = Command(new_key, {"GET", new_key});
  ASSERT_TRUE(get_new.ok()) << Describe(get_new);
  EXPECT_EQ(get_new.reply().string(), "new");
  const Result get_old = Command(old_key, {"GET", old_key});  // still on the source
  ASSERT_TRUE(get_old.ok()) << Describe(get_old);
  EXPECT_EQ(get_old.reply().string(), "old");
  EXPECT_EQ(client_->SlotOwner(slot), source) << "ASK must not change the slot map";

  // Finish: move the remaining keys, then hand the slot to the target everywhere.
  const Result keys = OnNode(source, {"CLUSTER", "GETKEYSINSLOT", slot_text, "100"});
  ASSERT_TRUE(keys.ok() && keys.reply().IsArray()) << Describe(keys);
  for (const Reply& key : keys.reply().array()) {
    const Result migrated = OnNode(
        source, {"MIGRATE", target.host, std::to_string(target.port), key.string(), "0", "5000"});
    ASSERT_TRUE(migrated.ok()) << Describe(migrated);
  }
  ASSERT_TRUE(OnNode(target, {"CLUSTER", "SETSLOT", slot_text, "NODE", target_id}).ok());
  ASSERT_TRUE(OnNode(source, {"CLUSTER", "SETSLOT", slot_text, "NODE", target_id}).ok());
  for (const Endpoint& master : client_->Masters()) {
    if (!(master == source) && !(master == target)) {
      ASSERT_TRUE(OnNode(master, {"CLUSTER", "SETSLOT", slot_text, "NODE", target_id}).ok());
    }
  }

  const std::uint64_t moved = client_->counters().moved;
  const Result after = Command(old_key, {"GET", old_key});
  ASSERT_TRUE(after.ok()) << Describe(after);
  EXPECT_EQ(after.reply().string(), "old");
  EXPECT_EQ(client_->counters().moved, moved + 1);
  EXPECT_EQ(client_->SlotOwner(slot), target);
}

TEST_F(RedisClusterTest, TimesOutOnAPausedNodeAndKeepsRepliesInOrder) {
  const std::string tag = "{test:" + RunId() + ":paused}";
  const std::string value_key = tag + ":value";
  const std::string counter_key = tag + ":counter";
  ASSERT_TRUE(Command(value_key, {"SET", value_key, "v"}).ok());
  const Endpoint owner = *client_->SlotOwner(KeySlot(tag));
  ASSERT_TRUE(OnNode(owner, {"CLIENT", "PAUSE", "600", "ALL"}).ok());

  const auto start = Clock::now();
  const Result late = Command(value_key, {"GET", value_key}, CommandOptions{.timeout = 150ms});
  ASSERT_FALSE(late.ok());
  EXPECT_EQ(late.error().kind, ErrorKind::kTimeout);
  EXPECT_LT(Clock::now() - start, 500ms);
  EXPECT_EQ(client_->counters().timeouts, 1u);

  // Same connection: the GET's late reply ("v") comes first and must not be taken for this one's.
  const Result incr = Command(counter_key, {"INCR", counter_key}, CommandOptions{.timeout = 3s});
  ASSERT_TRUE(incr.ok()) << Describe(incr);
  EXPECT_TRUE(incr.reply().IsInteger()) << Describe(incr);
}

// Last on purpose: it kills a master. It restores the cluster with `scripts/redis-cluster up`.
TEST_F(RedisClusterTest, RecoversWithinTenSecondsAfterKillMinusNineOfAMaster) {
  const std::string key = "{test:" + RunId() + ":failover}";
  const int slot = KeySlot(key);
  const Endpoint master = *client_->SlotOwner(slot);
  const Result info = OnNode(master, {"INFO", "server"});
  ASSERT_TRUE(info.ok()) << Describe(info);
  const std::string& text = info.reply().string();
  const auto at = text.find("process_id:");
  ASSERT_NE(at, std::string::npos);
  const pid_t pid = static_cast<pid_t>(std::stol(text.substr(at + 11)));

  // Acknowledged with WAIT 1 before the crash: it must survive the failover.
  const Script set("return redis.call('SET', KEYS[1], ARGV[1])");
  const std::vector<std::string_view> keys{key};
  const std::vector<std::string_view> args{"before"};
  const Result durable = Run(
      [&](Callback done) { client_->EvalAndWait(set, keys, args, 1, 1000ms, std::move(done)); });
  ASSERT_TRUE(durable.ok()) << Describe(durable);

  // Background load on every master while it fails over: each command must complete exactly
  // once, with a reply or a retryable error, never hang.
  int issued = 0;
  int completed = 0;
  int load_errors = 0;
  auto issue_load = [&] {
    for (int i = 0; i < 50; ++i, ++issued) {
      const std::string load_key = "test:" + RunId() + ":load:" + std::to_string(issued % 997);
      const std::vector<std::string_view> load_keys{load_key};
      auto done = [&](const Result& result) {
        ++completed;
        if (!result.ok()) {
          ++load_errors;
          EXPECT_TRUE(result.error().retryable()) << Describe(result);
        }
      };
      if (i % 2 == 0) {
        client_->Execute(load_key, {"INCR", load_key}, done, CommandOptions{.timeout = 1s});
      } else {
        client_->EvalAndWait(set, load_keys, args, 1, 500ms, done, CommandOptions{.timeout = 1s});
      }
    }
  };

  ASSERT_EQ(kill(pid, SIGKILL), 0);
  const auto killed_at = Clock::now();
  std::optional<Result> recovered;
  int attempts = 0;
  while (Clock::now() - killed_at < 15s) {
    ++attempts;
    issue_load();
    Result get = Command(key, {"GET", key}, CommandOptions{.timeout = 1s, .idempotent = true});
    if (get.ok()) {
      recovered = std::move(get);
      break;
    }
    EXPECT_TRUE(get.error().retryable()) << Describe(get);
    RunFor(io_, 50ms);
  }
  const auto recovery =
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - killed_at);
  std::cout << "recovered after " << recovery.count() << " ms, " << attempts << " attempts\n";
  ASSERT_TRUE(RunUntil(
      io_, [&] { return completed == issued; }, 5s))
      << completed << " of " << issued << " commands completed";
  std::cout << issued << " commands under failover, " << load_errors << " retryable errors\n";
  ASSERT_TRUE(recovered) << "no successful command within 15 s of kill -9";
  EXPECT_LT(recovery, 10s);
  EXPECT_EQ(recovered->reply().string(), "before") << "a WAIT-acknowledged write was lost";
  EXPECT_NE(client_->SlotOwner(slot), master) << "the replica should own the slot now";
  const Result write = Command(key, {"SET", key, "after"});
  ASSERT_TRUE(write.ok()) << Describe(write);
  EXPECT_GE(client_->counters().connection_losses, 1u);

  // Bring the killed node back (as a replica) for whatever runs next.
  const std::string script =
      Env("REDPACKET_REDIS_CLUSTER_SCRIPT", REDPACKET_REDIS_CLUSTER_SCRIPT_DEFAULT);
  const std::string run_dir = Env("REDPACKET_REDIS_RUN_DIR", "");
  const std::string up =
      "'" + script + "' up" + (run_dir.empty() ? "" : " --run-dir '" + run_dir + "'");
  ASSERT_EQ(std::system(up.c_str()), 0) << up;  // NOLINT(concurrency-mt-unsafe)
  const Result after_restore = Command(key, {"GET", key});
  ASSERT_TRUE(after_restore.ok()) << Describe(after_restore);
  EXPECT_EQ(after_restore.reply().string(), "after");
}

}  // namespace
}  // namespace redpacket::net::redis
