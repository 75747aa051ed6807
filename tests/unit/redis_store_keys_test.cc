// Key naming of the Redis store: every key of a packet hashes to one slot, and names are stable
// (they are the data format shared by every API server and the benchmark scripts).
#include <gtest/gtest.h>

#include <set>
#include <stdexcept>

#include "net/redis/slot.h"
#include "store/redis/keys.h"

namespace redpacket::store::redis {
namespace {

using net::redis::KeySlot;

TEST(RedisStoreKeys, PacketKeysAreNamedByTheDocumentedScheme) {
  const KeySpace keys;
  const PacketKeys packet = keys.ForPacket(42);
  EXPECT_EQ(packet.meta, "{rp:42}:meta");
  EXPECT_EQ(packet.shares, "{rp:42}:shares");
  EXPECT_EQ(packet.grabs, "{rp:42}:grabs");
  EXPECT_EQ(keys.bloom(), "{rp:bloom}");
  EXPECT_EQ(keys.bloom_parameters(), "{rp:bloom}:params");
  EXPECT_EQ(keys.expiry(), "{rp:expiry}");
}

TEST(RedisStoreKeys, EveryKeyOfAPacketIsInOneSlot) {
  const KeySpace keys;
  for (domain::PacketId id : {std::int64_t{1}, std::int64_t{7}, std::int64_t{123456789},
                              std::int64_t{9223372036854775807}}) {
    const PacketKeys packet = keys.ForPacket(id);
    EXPECT_EQ(KeySlot(packet.meta), KeySlot(packet.shares)) << id;
    EXPECT_EQ(KeySlot(packet.meta), KeySlot(packet.grabs)) << id;
    EXPECT_EQ(KeySlot(packet.meta), KeySlot("rp:" + std::to_string(id))) << id;
  }
  EXPECT_EQ(KeySlot(keys.bloom()), KeySlot(keys.bloom_parameters()));
}

TEST(RedisStoreKeys, PacketsSpreadOverSlots) {
  const KeySpace keys;
  std::set<int> slots;
  for (domain::PacketId id = 1; id <= 1000; ++id) slots.insert(KeySlot(keys.ForPacket(id).meta));
  EXPECT_GT(slots.size(), 900u) << "consecutive ids must not pile onto a few slots";
}

TEST(RedisStoreKeys, PrefixSeparatesKeySpaces) {
  const KeySpace keys("rptest:9");
  EXPECT_EQ(keys.ForPacket(5).meta, "{rptest:9:5}:meta");
  EXPECT_EQ(keys.expiry(), "{rptest:9:expiry}");
  EXPECT_THROW(KeySpace(""), std::invalid_argument);
  EXPECT_THROW(KeySpace("a{b"), std::invalid_argument);
  EXPECT_THROW(KeySpace("a}b"), std::invalid_argument);
}

}  // namespace
}  // namespace redpacket::store::redis
