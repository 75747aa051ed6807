// The Redis store's outbox and restore paths, over the real cluster: a grab and its event are
// recorded in one step in the packet's slot, handed on only once replicated, kept until removed
// and claimable when old; a repeat records nothing; a close records the refund behind the grabs;
// a packet whose keys are lost stays registered for expiry and is reported; a reservation makes
// its grabs retryable until the loader loads it over. Blocking test code.
#include <gtest/gtest.h>

#include <algorithm>

#include "store/outbox.h"
#include "store/restore.h"
#include "store_test_support.h"

namespace redpacket::store {
namespace {

class RedisOutboxTest : public ::testing::Test {
 protected:
  RedisOutboxTest() {
    redis::RedisStoreOptions options = TestOptions();
    options.on_recorded = [this](OutboxEntry entry) {
      std::lock_guard lock(mutex_);
      handed_.push_back(std::move(entry));
    };
    under_test_.emplace(std::move(options), 2);
    keys_.emplace(under_test_->options().key_prefix);
  }

  redis::RedisStore& store() { return under_test_->redis_store(); }
  std::vector<OutboxEntry> Handed() {
    std::lock_guard lock(mutex_);
    return handed_;
  }
  std::int64_t OutboxLength(domain::PacketId id) {
    const std::string& outbox = keys_->OutboxOf(keys_->SlotOf(id));
    const auto length = admin_.Command(outbox, {"XLEN", outbox});
    EXPECT_TRUE(length.ok()) << Describe(length);
    return length.ok() ? length.reply().integer() : -1;
  }
  // The outbox's entries in order, as XRANGE gives them.
  std::vector<OutboxEntry> OutboxEntries(domain::PacketId id) {
    const int slot = keys_->SlotOf(id);
    const std::string& outbox = keys_->OutboxOf(slot);
    const auto range = admin_.Command(outbox, {"XRANGE", outbox, "-", "+"});
    EXPECT_TRUE(range.ok()) << Describe(range);
    auto entries = redis::ParseOutboxEntries(range.reply(), slot);
    EXPECT_TRUE(entries.ok());
    return entries.ok() ? *entries : std::vector<OutboxEntry>{};
  }
  void LoseKeys(domain::PacketId id) {
    const redis::PacketKeys keys = keys_->ForPacket(id);
    ASSERT_TRUE(admin_.Command(keys.meta, {"DEL", keys.meta, keys.shares, keys.grabs}).ok());
  }
  template <class Predicate>
  bool Eventually(Predicate predicate) {
    for (int i = 0; i < 200; ++i) {
      if (predicate()) return true;
      std::this_thread::sleep_for(10ms);
    }
    return predicate();
  }

  std::mutex mutex_;
  std::vector<OutboxEntry> handed_;
  std::optional<RedisStoreUnderTest> under_test_;
  AdminClient admin_;
  std::optional<redis::KeySpace> keys_;
};

TEST_F(RedisOutboxTest, AGrabIsRecordedWithItsEventAndHandedOnceReplicated) {
  const domain::PacketId id = under_test_->NewPacketId();
  ASSERT_TRUE(AddNow(*under_test_, MakePacket(id, {11, 22, 33})).ok());
  const GrabResult grab = GrabNow(*under_test_, id, 7);
  ASSERT_EQ(grab.code, ErrorCode::kOk);

  const std::vector<OutboxEntry> handed = Handed();
  ASSERT_EQ(handed.size(), 1u);
  const LedgerEvent expected{LedgerEvent::Type::kGrab, id,       7,
                             grab.amount_cents,        grab.seq, handed[0].event.at_millis};
  EXPECT_EQ(handed[0].event, expected);
  EXPECT_EQ(handed[0].shard, keys_->SlotOf(id));
  const std::vector<OutboxEntry> recorded = OutboxEntries(id);
  ASSERT_EQ(recorded.size(), 1u) << "decided and recorded in one step";
  EXPECT_EQ(recorded[0].id, handed[0].id);
  EXPECT_EQ(recorded[0].event, handed[0].event);
  auto holds = store().Holds(id);
  ASSERT_TRUE(holds.ok());
  EXPECT_TRUE(*holds);

  // A repeat answers 409 with the first amount and records nothing.
  const GrabResult repeat = GrabNow(*under_test_, id, 7);
  EXPECT_EQ(repeat.code, ErrorCode::kConflict);
  EXPECT_EQ(repeat.amount_cents, grab.amount_cents);
  EXPECT_EQ(OutboxLength(id), 1);
  EXPECT_EQ(Handed().size(), 1u);

  // Removed once the bus acknowledged it; the emptied outbox key goes too.
  store().Remove(handed);
  EXPECT_TRUE(Eventually([&] { return OutboxLength(id) == 0; }));
  const std::string& outbox = keys_->OutboxOf(keys_->SlotOf(id));
  const auto exists = admin_.Command(outbox, {"EXISTS", outbox});
  ASSERT_TRUE(exists.ok());
  EXPECT_EQ(exists.reply().integer(), 0);
  holds = store().Holds(id);
  ASSERT_TRUE(holds.ok());
  EXPECT_FALSE(*holds);
}

TEST_F(RedisOutboxTest, ClaimReturnsWhatWaitedLongerThanItsAgeAndRemoveEndsIt) {
  const domain::PacketId id = under_test_->NewPacketId();
  ASSERT_TRUE(AddNow(*under_test_, MakePacket(id, {5, 6})).ok());
  ASSERT_EQ(GrabNow(*under_test_, id, 1).code, ErrorCode::kOk);
  ASSERT_EQ(GrabNow(*under_test_, id, 2).code, ErrorCode::kOk);

  auto young = store().Claim(60s, 100);
  ASSERT_TRUE(young.ok()) << young.error().message;
  EXPECT_TRUE(std::none_of(young->begin(), young->end(),
                           [&](const OutboxEntry& e) { return e.event.packet_id == id; }));
  std::this_thread::sleep_for(5ms);
  auto claimed = store().Claim(1ms, 100000);
  ASSERT_TRUE(claimed.ok()) << claimed.error().message;
  std::vector<OutboxEntry> mine;
  std::copy_if(claimed->begin(), claimed->end(), std::back_inserter(mine),
               [&](const OutboxEntry& e) { return e.event.packet_id == id; });
  ASSERT_EQ(mine.size(), 2u);
  EXPECT_EQ(mine[0].event.seq, 1);
  EXPECT_EQ(mine[1].event.seq, 2);
  EXPECT_EQ(mine[0].event, Handed()[0].event);

  store().Remove(mine);
  EXPECT_TRUE(Eventually([&] { return OutboxLength(id) == 0; }));
  auto again = store().Claim(1ms, 100000);
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(std::none_of(again->begin(), again->end(),
                           [&](const OutboxEntry& e) { return e.event.packet_id == id; }));
}

TEST_F(RedisOutboxTest, ACloseRecordsTheRefundBehindTheGrabsOnce) {
  const domain::PacketId id = under_test_->NewPacketId();
  ASSERT_TRUE(AddNow(*under_test_, MakePacket(id, {10, 20, 30}, 60s)).ok());
  const GrabResult grab = GrabNow(*under_test_, id, 4);
  ASSERT_EQ(grab.code, ErrorCode::kOk);
  const auto later = domain::Clock::now() + 120s;
  EXPECT_EQ(store().Sweep(later, 0, 0ms).closed, 1u);
  EXPECT_EQ(store().Sweep(later, 0, 0ms).closed, 0u) << "closed once";

  const std::vector<OutboxEntry> recorded = OutboxEntries(id);
  ASSERT_EQ(recorded.size(), 2u);
  EXPECT_EQ(recorded[0].event.type, LedgerEvent::Type::kGrab);
  EXPECT_EQ(recorded[1].event.type, LedgerEvent::Type::kRefund) << "behind the packet's grabs";
  EXPECT_EQ(recorded[1].event.amount_cents, 60 - grab.amount_cents);
  EXPECT_EQ(recorded[1].event.user_id, 1);
  const std::vector<OutboxEntry> handed = Handed();
  ASSERT_EQ(handed.size(), 2u);
  EXPECT_EQ(handed[1].event, recorded[1].event);
  EXPECT_EQ(ReadPacket(admin_, *keys_, id).status, "refunded");
  const auto registered =
      admin_.Command(keys_->expiry(), {"ZSCORE", keys_->expiry(), std::to_string(id)});
  ASSERT_TRUE(registered.ok());
  EXPECT_TRUE(registered.reply().IsNil()) << "unregistered once closed";
}

TEST_F(RedisOutboxTest, APacketWhoseKeysAreLostStaysRegisteredAndIsReportedLost) {
  const domain::PacketId id = under_test_->NewPacketId();
  ASSERT_TRUE(AddNow(*under_test_, MakePacket(id, {10, 20}, 60s)).ok());
  LoseKeys(id);
  const store::SweepStats swept = store().Sweep(domain::Clock::now() + 120s, 0, 0ms);
  EXPECT_EQ(swept.closed, 0u);
  EXPECT_EQ(swept.lost, std::vector<domain::PacketId>{id});
  const auto registered =
      admin_.Command(keys_->expiry(), {"ZSCORE", keys_->expiry(), std::to_string(id)});
  ASSERT_TRUE(registered.ok());
  EXPECT_FALSE(registered.reply().IsNil()) << "its refund waits for the restore";
  EXPECT_TRUE(OutboxEntries(id).empty()) << "no refund recorded for what is not there";

  // What the grab path reports reaches the loader once.
  store().ReportLost(id);
  store().ReportLost(id);
  std::vector<domain::PacketId> taken;
  ASSERT_TRUE(Eventually([&] {
    auto lost = store().TakeLost(10);
    if (lost.ok()) taken.insert(taken.end(), lost->begin(), lost->end());
    return !taken.empty();
  }));
  EXPECT_EQ(taken, std::vector<domain::PacketId>{id});
}

TEST_F(RedisOutboxTest, AReservedPacketIsRetryableUntilItIsLoadedOver) {
  const domain::PacketId id = under_test_->NewPacketId();
  domain::PacketRecord packet = MakePacket(id, {10, 20, 30});
  ASSERT_TRUE(AddNow(*under_test_, packet).ok());
  auto held = store().Reserve(id, packet.expires_at);
  ASSERT_TRUE(held.ok());
  EXPECT_EQ(*held, Reservation::kHeld);
  const GrabResult first = GrabNow(*under_test_, id, 1);
  ASSERT_EQ(first.code, ErrorCode::kOk);

  LoseKeys(id);
  auto reserved = store().Reserve(id, packet.expires_at);
  ASSERT_TRUE(reserved.ok());
  EXPECT_EQ(*reserved, Reservation::kReserved);
  const GrabResult waiting = GrabNow(*under_test_, id, 2);
  EXPECT_EQ(waiting.code, ErrorCode::kUnavailable) << "retryable, never 410 nor a share";
  EXPECT_FALSE(SnapshotNow(*under_test_, id).has_value());

  // The loader loads it over with what the ledger holds: the first grab and its share.
  packet.grabs = {domain::Grab{1, first.amount_cents, first.seq, domain::Clock::now()}};
  ASSERT_TRUE(AddNow(*under_test_, packet).ok());
  const RedisPacketState state = ReadPacket(admin_, *keys_, id);
  EXPECT_EQ(state.status, "open");
  EXPECT_EQ(state.shares_left, 2);
  EXPECT_EQ(GrabNow(*under_test_, id, 1).code, ErrorCode::kConflict) << "the taken share stays";
  const GrabResult second = GrabNow(*under_test_, id, 2);
  ASSERT_EQ(second.code, ErrorCode::kOk);
  EXPECT_EQ(second.seq, 2);
}

TEST_F(RedisOutboxTest, UnregisterDropsAReservationTheLedgerNoLongerNeeds) {
  const domain::PacketId id = under_test_->NewPacketId();
  const domain::PacketRecord packet = MakePacket(id, {10, 20});
  ASSERT_TRUE(AddNow(*under_test_, packet).ok());
  LoseKeys(id);
  ASSERT_EQ(*store().Reserve(id, packet.expires_at), Reservation::kReserved);
  ASSERT_TRUE(store().Unregister(id).ok());
  const GrabResult grab = GrabNow(*under_test_, id, 3);
  EXPECT_EQ(grab.code, ErrorCode::kNotFound);
  EXPECT_TRUE(grab.not_held) << "not held: the ledger answers";
}

}  // namespace
}  // namespace redpacket::store
