// What the Redis store's tests share: the stores under test (memory, and RedisStore on its own
// I/O threads over the cluster the `redis` fixture started), blocking helpers, and an admin client
// that looks at Redis directly. Test code: blocking, one test thread.
#pragma once

#include <gtest/gtest.h>

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
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>
#include <thread>
#include <vector>

#include "domain/packet.h"
#include "net/redis/cluster_client.h"
#include "redis_test_cluster.h"
#include "store/memory/memory_store.h"
#include "store/redis/keys.h"
#include "store/redis/redis_store.h"
#include "store/redis/script_replies.h"
#include "tests/store/store_under_test.h"

namespace redpacket::store {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using domain::ErrorCode;
using domain::LedgerEvent;
using net::redis::Endpoint;

inline std::string Env(const char* name, const std::string& fallback) {
  const char* value = std::getenv(name);  // NOLINT(concurrency-mt-unsafe): read before threads
  return value != nullptr && *value != '\0' ? value : fallback;
}

// REDPACKET_REDIS_NODES, else the ports of scripts/redis-cluster from REDPACKET_REDIS_BASE_PORT.
inline std::vector<Endpoint> ClusterNodes() { return redis_test::RedisClusterNodes(); }

// A key prefix no earlier run used, so tests against a kept cluster do not meet old keys.
inline std::string FreshPrefix() {
  static std::atomic<int> next{0};
  static const std::string run = std::to_string(std::random_device{}());
  return "rptest:" + run + ":" + std::to_string(next++);
}

// io_contexts each run by one thread, as the server's I/O threads.
class IoThreads {
 public:
  explicit IoThreads(int count) {
    for (int i = 0; i < count; ++i) {
      contexts_.push_back(std::make_unique<asio::io_context>());
      guards_.emplace_back(asio::make_work_guard(*contexts_.back()));
      pointers_.push_back(contexts_.back().get());
    }
    for (auto& context : contexts_) threads_.emplace_back([&io = *context] { io.run(); });
  }
  ~IoThreads() { Stop(); }
  void Stop() {
    guards_.clear();
    for (auto& context : contexts_) context->stop();
    for (auto& thread : threads_) {
      if (thread.joinable()) thread.join();
    }
  }
  std::span<asio::io_context* const> contexts() const { return pointers_; }
  asio::io_context& at(int i) { return *contexts_[static_cast<std::size_t>(i) % contexts_.size()]; }

 private:
  std::vector<std::unique_ptr<asio::io_context>> contexts_;
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> guards_;
  std::vector<asio::io_context*> pointers_;
  std::vector<std::thread> threads_;
};

inline redis::RedisStoreOptions TestOptions() {
  redis::RedisStoreOptions options;
  options.key_prefix = FreshPrefix();
  options.bloom_capacity = 100'000;  // 120 KB per test prefix instead of 17 MiB
  // A loaded two-CPU test box can be slow to replicate; production uses 100 ms.
  options.replication_timeout = 1000ms;
  options.grab_timeout = 5000ms;
  options.client.command_timeout = 5000ms;
  return options;
}

class RedisStoreUnderTest final : public StoreUnderTest {
 public:
  static constexpr const char* kName = "Redis";
  explicit RedisStoreUnderTest(redis::RedisStoreOptions options = TestOptions(), int threads = 4)
      : options_(std::move(options)), io_(threads) {
    // What the relay would be handed (recorded and replicated) is what the suite checks.
    if (!options_.on_recorded) {
      options_.on_recorded = [this](OutboxEntry entry) { sink.Append(entry.event, [] {}); };
    }
    store_ = std::make_unique<redis::RedisStore>(io_.contexts(), ClusterNodes(), options_);
    std::promise<domain::Status> connected;
    store_->Connect([&](domain::Status status) { connected.set_value(std::move(status)); });
    auto future = connected.get_future();
    if (future.wait_for(15s) != std::future_status::ready) {
      ADD_FAILURE() << "RedisStore::Connect did not answer (is the cluster up?)";
      return;
    }
    const domain::Status status = future.get();
    EXPECT_TRUE(status.ok()) << status.error().message;
  }
  ~RedisStoreUnderTest() override {
    io_.Stop();
    store_.reset();
  }
  PacketStore& store() override { return *store_; }
  redis::RedisStore& redis_store() { return *store_; }
  void Submit(int worker, std::function<void()> work) override {
    asio::post(io_.at(worker), std::move(work));
  }
  const redis::RedisStoreOptions& options() const { return options_; }

 private:
  redis::RedisStoreOptions options_;
  IoThreads io_;
  std::unique_ptr<redis::RedisStore> store_;
};

// A plain client on its own io_context, driven by the test thread, to look at Redis directly.
class AdminClient {
 public:
  AdminClient() {
    net::redis::ClusterClientOptions options;
    options.seeds = ClusterNodes();
    options.command_timeout = 2s;
    client_ = std::make_unique<net::redis::ClusterClient>(io_, options);
  }

  net::redis::Result Run(const std::function<void(net::redis::Callback)>& issue) {
    std::optional<net::redis::Result> result;
    issue([&](net::redis::Result r) { result.emplace(std::move(r)); });
    const auto end = std::chrono::steady_clock::now() + 15s;
    while (!result && std::chrono::steady_clock::now() < end) {
      io_.restart();
      io_.run_one_for(10ms);
    }
    if (!result) return net::redis::Error{net::redis::ErrorKind::kTimeout, "test gave up"};
    return *result;
  }
  net::redis::Result Command(std::string_view key, std::initializer_list<std::string_view> argv) {
    return Run([&](net::redis::Callback done) {
      client_->Execute(key, argv, std::move(done),
                       net::redis::CommandOptions{.timeout = 2s, .idempotent = true});
    });
  }
  net::redis::Result OnNode(const Endpoint& node, std::initializer_list<std::string_view> argv) {
    return Run(
        [&](net::redis::Callback done) { client_->ExecuteOnNode(node, argv, std::move(done)); });
  }
  net::redis::Result Eval(const net::redis::Script& script, std::vector<std::string_view> keys,
                          std::vector<std::string_view> args) {
    return Run(
        [&](net::redis::Callback done) { client_->Eval(script, keys, args, std::move(done)); });
  }
  net::redis::ClusterClient& client() { return *client_; }

 private:
  asio::io_context io_;
  std::unique_ptr<net::redis::ClusterClient> client_;
};

// One of the store's scripts, to run it directly.
inline net::redis::Script LoadLua(const char* name) {
  std::ifstream file(redis::DefaultLuaDirectory() / name);
  std::stringstream text;
  text << file.rdbuf();
  return net::redis::Script(text.str());
}

inline std::string Describe(const net::redis::Result& result) {
  return result.ok() ? result.reply().DebugString() : result.error().ToString();
}

// What Redis holds for a packet: grabs by user, and the meta fields that matter here.
struct RedisPacketState {
  std::map<domain::UserId, std::pair<domain::Cents, std::int64_t>> grabs;  // user -> amount, seq
  std::string status;
  domain::Cents grabbed = 0;
  std::int64_t shares_left = -1;
};

inline RedisPacketState ReadPacket(AdminClient& admin, const redis::KeySpace& keys,
                                   domain::PacketId id) {
  const redis::PacketKeys packet = keys.ForPacket(id);
  RedisPacketState state;
  const auto grabs = admin.Command(packet.grabs, {"HGETALL", packet.grabs});
  EXPECT_TRUE(grabs.ok()) << Describe(grabs);
  if (grabs.ok()) {
    const auto& items = grabs.reply().array();
    for (std::size_t i = 0; i + 1 < items.size(); i += 2) {
      // "amount:seq:at_ms:token"
      const std::string& value = items[i + 1].string();
      const std::size_t colon = value.find(':');
      state.grabs[std::stoll(items[i].string())] = {std::stoll(value.substr(0, colon)),
                                                    std::stoll(value.substr(colon + 1))};
    }
  }
  const auto meta = admin.Command(packet.meta, {"HMGET", packet.meta, "status", "grabbed"});
  EXPECT_TRUE(meta.ok()) << Describe(meta);
  if (meta.ok() && meta.reply().array()[0].IsString()) {
    state.status = meta.reply().array()[0].string();
    state.grabbed = std::stoll(meta.reply().array()[1].string());
  }
  const auto left = admin.Command(packet.shares, {"LLEN", packet.shares});
  if (left.ok()) state.shares_left = left.reply().integer();
  return state;
}

}  // namespace redpacket::store
