// The embedded store's per-shard sweep index on its own: what each take returns and that it holds
// no more than the packets it indexes (the store-level contract is in memory_store_test.cc).
#include <gtest/gtest.h>

#include "store/memory/sweep_index.h"

namespace redpacket::store {
namespace {

const domain::TimePoint kBase = domain::FromUnixMillis(1'800'000'000'000);

domain::TimePoint At(int millis) { return kBase + std::chrono::milliseconds(millis); }

TEST(SweepIndex, TakeExpiredReturnsEachDueOpenPacketOnceInExpiryOrder) {
  SweepIndex index;
  index.AddOpen(3, At(30));
  index.AddOpen(1, At(10));
  index.AddOpen(2, At(20));
  index.AddOpen(4, At(20));
  EXPECT_EQ(index.TakeExpired(At(9)), std::vector<domain::PacketId>{});
  EXPECT_EQ(index.TakeExpired(At(20)), (std::vector<domain::PacketId>{1, 2, 4}));
  EXPECT_EQ(index.TakeExpired(At(20)), std::vector<domain::PacketId>{});
  EXPECT_EQ(index.open_size(), 1u);
}

TEST(SweepIndex, PacketEmptiedBeforeItsExpiryLeavesTheOpenPackets) {
  SweepIndex index;
  for (int i = 0; i < 100; ++i) index.AddOpen(i, At(1000 + i));
  for (int i = 0; i < 100; i += 2) index.AddFinished({i, At(5), 1}, At(1000 + i));
  EXPECT_EQ(index.open_size(), 50u) << "the index must not keep finished packets until expiry";
  EXPECT_EQ(index.TakeExpired(At(2000)).size(), 50u);
}

TEST(SweepIndex, TakeEvictableWantsRetentionThenApplied) {
  SweepIndex index;
  index.AddFinished({1, At(0), 5});
  index.AddFinished({2, At(100), 1});
  index.AddFinished({3, At(50), 9});
  const auto retention = std::chrono::milliseconds(100);
  EXPECT_TRUE(index.TakeEvictable(At(99), 100, retention).empty());
  auto taken = index.TakeEvictable(At(150), 5, retention);  // 1 and 3 past retention, 1 applied
  ASSERT_EQ(taken.size(), 1u);
  EXPECT_EQ(taken[0].packet_id, 1);
  EXPECT_TRUE(index.TakeEvictable(At(150), 8, retention).empty());
  taken = index.TakeEvictable(At(200), 9, retention);
  ASSERT_EQ(taken.size(), 2u);
  EXPECT_EQ(taken[0].packet_id, 2);  // by position
  EXPECT_EQ(taken[1].packet_id, 3);
  EXPECT_EQ(index.finished_size(), 0u);
}

}  // namespace
}  // namespace redpacket::store
