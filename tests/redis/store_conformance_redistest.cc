// The PacketStore contract, run against both engines: the same stampede, repeat, exclusive, expiry
// and unknown-id cases on the memory store (tests/unit/store_conformance_memory_test.cc) and on
// RedisStore over the real cluster. Then the Redis store's own cases (bloom filter, big and
// recovered packets, script-level retry). kill -9 of the hot packet's master is in
// redis_store_failover_redistest.cc. Blocking test code.
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

}  // namespace
}  // namespace redpacket::store
