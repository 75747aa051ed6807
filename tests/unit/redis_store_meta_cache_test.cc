// The per-thread metadata cache of the Redis store: randomized TTLs within base +- jitter,
// expiry, and its size bound. Time and randomness are injected.
#include <gtest/gtest.h>

#include <chrono>
#include <set>

#include "store/redis/meta_cache.h"

namespace redpacket::store::redis {
namespace {

using namespace std::chrono_literals;

PacketMeta Meta(domain::UserId sender) {
  PacketMeta meta;
  meta.sender_id = sender;
  meta.total_cents = 100;
  meta.count = 10;
  return meta;
}

TEST(RedisStoreMetaCache, TtlIsSpreadOverBasePlusMinusJitter) {
  MetaCache cache(60s, 15s, 100);
  domain::SeededRandom random(7);
  std::set<std::int64_t> seconds;
  for (int i = 0; i < 2000; ++i) {
    const auto ttl = cache.DrawTtl(random);
    ASSERT_GE(ttl, 45s);
    ASSERT_LE(ttl, 75s);
    seconds.insert(std::chrono::duration_cast<std::chrono::seconds>(ttl).count());
  }
  EXPECT_GE(seconds.size(), 30u) << "entries filled together must not expire together";
}

TEST(RedisStoreMetaCache, EntriesExpireAfterTheirOwnTtl) {
  MetaCache cache(10s, 2s, 100);
  domain::SeededRandom random(1);
  const MetaCache::Time start{};
  cache.Insert(1, Meta(5), start, random);
  ASSERT_NE(cache.Find(1, start + 7999ms), nullptr);
  EXPECT_EQ(cache.Find(1, start + 7999ms)->sender_id, 5);
  EXPECT_EQ(cache.Find(1, start + 12s), nullptr);
  EXPECT_EQ(cache.size(), 0u) << "an expired entry found is dropped";
  EXPECT_EQ(cache.Find(2, start), nullptr);
}

TEST(RedisStoreMetaCache, StaysWithinItsBound) {
  MetaCache cache(10s, 0s, 3);
  domain::SeededRandom random(1);
  const MetaCache::Time start{};
  cache.Insert(1, Meta(1), start, random);
  cache.Insert(2, Meta(2), start, random);
  cache.Insert(3, Meta(3), start + 5s, random);
  cache.Insert(4, Meta(4), start + 11s, random);  // 1 and 2 have expired: both go
  EXPECT_EQ(cache.size(), 2u);
  EXPECT_NE(cache.Find(3, start + 11s), nullptr);
  EXPECT_NE(cache.Find(4, start + 11s), nullptr);
  cache.Insert(5, Meta(5), start + 11s, random);
  cache.Insert(6, Meta(6), start + 11s, random);  // full of live entries: one arbitrary goes
  EXPECT_EQ(cache.size(), 3u);
  EXPECT_NE(cache.Find(6, start + 11s), nullptr);
}

TEST(RedisStoreMetaCache, ZeroTtlDisablesCachingAndBadOptionsThrow) {
  MetaCache cache(0s, 0s, 10);
  domain::SeededRandom random(1);
  cache.Insert(1, Meta(1), {}, random);
  EXPECT_EQ(cache.Find(1, {}), nullptr);
  EXPECT_THROW(MetaCache(1s, 2s, 10), std::invalid_argument);
  EXPECT_THROW(MetaCache(1s, 0s, 0), std::invalid_argument);
}

}  // namespace
}  // namespace redpacket::store::redis
