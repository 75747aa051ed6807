// PendingCredits: a balance read counts each durable event exactly once, in the ledger's
// balance or in pending, whether the applier's commit came before, during or after the read.
#include "service/pending_credits.h"

#include <gtest/gtest.h>

#include <vector>

namespace redpacket::service {
namespace {

std::vector<PendingEvent> Events() {
  // positions 11..14: user 1 gets 5 and 7, user 2 gets 100 and 3
  return {{11, 1, 5}, {12, 2, 100}, {13, 1, 7}, {14, 2, 3}};
}

TEST(PendingCreditsTest, BeyondASnapshotCountsWhatTheSnapshotLacks) {
  PendingCredits pending;
  pending.Reset(10);
  pending.Add(Events());
  EXPECT_EQ(pending.Beyond(1, 10), 12);
  EXPECT_EQ(pending.Beyond(2, 10), 103);
  EXPECT_EQ(pending.Beyond(3, 10), 0);
  // The applier committed 11..12 but has not removed them yet: a snapshot at 12 holds them.
  EXPECT_EQ(pending.Beyond(1, 12), 7);
  EXPECT_EQ(pending.Beyond(2, 12), 3);
}

TEST(PendingCreditsTest, ASnapshotOlderThanTheLastRemoveStillCountsThoseEvents) {
  PendingCredits pending;
  pending.Reset(10);
  pending.Add(Events());
  pending.Remove(13);
  EXPECT_EQ(pending.Beyond(1, 13), 0);
  EXPECT_EQ(pending.Beyond(2, 13), 3);
  // The read's snapshot was taken before the commit of 11..13.
  EXPECT_EQ(pending.Beyond(1, 10), 12);
  EXPECT_EQ(pending.Beyond(2, 12), 3);
  EXPECT_EQ(pending.Beyond(1, 11), 7);
  // Two commits during the read: too old to tell, the caller reads again.
  pending.Remove(14);
  EXPECT_EQ(pending.Beyond(2, 10), std::nullopt);
  EXPECT_EQ(pending.Beyond(2, 13), 3);
  EXPECT_EQ(pending.Beyond(2, 14), 0);
}

TEST(PendingCreditsTest, RemoveNeverMovesBack) {
  PendingCredits pending;
  pending.Reset(10);
  pending.Add(Events());
  pending.Remove(14);
  pending.Remove(12);  // a late notification of an older batch
  EXPECT_EQ(pending.Beyond(1, 14), 0);
  EXPECT_EQ(pending.Beyond(2, 14), 0);
}

}  // namespace
}  // namespace redpacket::service
