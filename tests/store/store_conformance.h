// The PacketStore contract, the same cases on every engine: a stampede, a repeat, an exclusive
// packet, expiry and its refund, an unknown id, an idempotent Add. An engine's test instantiates
// it with its StoreUnderTest: tests/unit/store_conformance_memory_test.cc (the memory store, a
// unit test) and tests/redis/store_conformance_redistest.cc (RedisStore on the real cluster).
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "domain/packet.h"
#include "domain/random.h"
#include "tests/store/store_under_test.h"

namespace redpacket::store {

template <class T>
class StoreConformanceTest : public ::testing::Test {
 protected:
  T under_test_;
};

struct StoreName {
  template <class T>
  static std::string GetName(int /*index*/) {
    return T::kName;
  }
};
TYPED_TEST_SUITE_P(StoreConformanceTest);

TYPED_TEST_P(StoreConformanceTest, StampedeOf500UsersOn100SharesGivesEachShareOnce) {
  StoreUnderTest& under_test = this->under_test_;
  const domain::PacketId id = under_test.NewPacketId();
  std::vector<domain::Cents> shares(100);
  for (std::size_t i = 0; i < shares.size(); ++i) shares[i] = static_cast<domain::Cents>(i + 1);
  ASSERT_TRUE(AddNow(under_test, MakePacket(id, shares)).ok());

  constexpr int kThreads = 8;
  constexpr int kUsers = 500;
  std::mutex mutex;
  std::condition_variable all_answered;
  std::vector<std::pair<domain::UserId, GrabResult>> results;
  std::vector<std::thread> threads;
  threads.reserve(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (domain::UserId user = t + 1; user <= kUsers; user += kThreads) {
        under_test.Submit(t, [&, user] {
          under_test.store().Grab(id, user, domain::Clock::now(), [&, user](GrabResult result) {
            std::lock_guard lock(mutex);
            results.emplace_back(user, std::move(result));
            if (results.size() == kUsers) all_answered.notify_all();
          });
        });
      }
    });
  }
  for (auto& thread : threads) thread.join();
  {
    std::unique_lock lock(mutex);
    ASSERT_TRUE(all_answered.wait_for(lock, 30s, [&] { return results.size() == kUsers; }))
        << results.size() << " of " << kUsers << " grabs answered";
  }

  int gone = 0;
  domain::Cents sum = 0;
  std::set<domain::UserId> users;
  std::set<std::int64_t> seqs;
  for (const auto& [user, result] : results) {
    if (result.code == ErrorCode::kGone) {
      ++gone;
      continue;
    }
    ASSERT_EQ(result.code, ErrorCode::kOk) << result.message;
    sum += result.amount_cents;
    EXPECT_TRUE(users.insert(user).second) << "user " << user << " got two shares";
    EXPECT_TRUE(seqs.insert(result.seq).second) << "seq " << result.seq << " given twice";
    ASSERT_GE(result.seq, 1);
    ASSERT_LE(result.seq, 100);
    EXPECT_EQ(result.amount_cents, shares[static_cast<std::size_t>(result.seq - 1)]);
    EXPECT_EQ(result.remaining_count, 100 - result.seq);
  }
  EXPECT_EQ(users.size(), 100u);
  EXPECT_EQ(gone, kUsers - 100);
  EXPECT_EQ(sum, 5050);
  EXPECT_EQ(*seqs.begin(), 1);
  EXPECT_EQ(*seqs.rbegin(), 100);

  const auto events = under_test.sink.events(LedgerEvent::Type::kGrab);
  EXPECT_EQ(events.size(), 100u) << "one durable grab event per share";
  std::set<std::string> event_ids;
  for (const auto& event : events) event_ids.insert(event.EventId());
  EXPECT_EQ(event_ids.size(), 100u);

  auto snapshot = SnapshotNow(under_test, id);
  ASSERT_TRUE(snapshot);
  EXPECT_EQ(snapshot->record.status, domain::PacketStatus::kExhausted);
  EXPECT_EQ(snapshot->remaining_cents, 0);
  EXPECT_EQ(snapshot->remaining_count, 0);
  ASSERT_EQ(snapshot->record.grabs.size(), 100u);
  for (std::size_t i = 0; i < 100; ++i)
    EXPECT_EQ(snapshot->record.grabs[i].seq, std::int64_t(i + 1));
}

TYPED_TEST_P(StoreConformanceTest, RepeatIsConflictWithTheFirstAmount) {
  StoreUnderTest& under_test = this->under_test_;
  const domain::PacketId id = under_test.NewPacketId();
  ASSERT_TRUE(AddNow(under_test, MakePacket(id, {30, 70})).ok());
  const GrabResult first = GrabNow(under_test, id, 5);
  ASSERT_EQ(first.code, ErrorCode::kOk) << first.message;
  EXPECT_EQ(first.seq, 1);
  const GrabResult second = GrabNow(under_test, id, 5);
  EXPECT_EQ(second.code, ErrorCode::kConflict);
  EXPECT_EQ(second.amount_cents, first.amount_cents);
  EXPECT_EQ(second.seq, first.seq);
  // Still a conflict, not gone, once the packet is empty and expired: checked first.
  ASSERT_EQ(GrabNow(under_test, id, 6).code, ErrorCode::kOk);
  const GrabResult late = GrabNow(under_test, id, 5, domain::Clock::now() + 7200s);
  EXPECT_EQ(late.code, ErrorCode::kConflict);
  EXPECT_EQ(late.amount_cents, first.amount_cents);
  EXPECT_EQ(GrabNow(under_test, id, 7).code, ErrorCode::kGone);

  std::set<std::string> event_ids;
  for (const auto& event : under_test.sink.events(LedgerEvent::Type::kGrab)) {
    event_ids.insert(event.EventId());
  }
  EXPECT_EQ(event_ids, (std::set<std::string>{"g-" + std::to_string(id) + "-5",
                                              "g-" + std::to_string(id) + "-6"}));
}

TYPED_TEST_P(StoreConformanceTest, ExclusivePacketIsForbiddenToOthers) {
  StoreUnderTest& under_test = this->under_test_;
  const domain::PacketId id = under_test.NewPacketId();
  auto packet = MakePacket(id, {500});
  packet.spec.receiver_id = 9;
  ASSERT_TRUE(AddNow(under_test, packet).ok());
  EXPECT_EQ(GrabNow(under_test, id, 8).code, ErrorCode::kForbidden);
  const GrabResult mine = GrabNow(under_test, id, 9);
  ASSERT_EQ(mine.code, ErrorCode::kOk) << mine.message;
  EXPECT_EQ(mine.amount_cents, 500);
  EXPECT_EQ(GrabNow(under_test, id, 8).code, ErrorCode::kForbidden) << "forbidden before gone";
}

TYPED_TEST_P(StoreConformanceTest, ExpiryIsGoneAndSweepRefundsTheRestOnce) {
  StoreUnderTest& under_test = this->under_test_;
  const domain::PacketId id = under_test.NewPacketId();
  ASSERT_TRUE(AddNow(under_test, MakePacket(id, {10, 20, 30}, 60s)).ok());
  const GrabResult early = GrabNow(under_test, id, 2);
  ASSERT_EQ(early.code, ErrorCode::kOk) << early.message;
  const auto later = domain::Clock::now() + 61s;
  EXPECT_EQ(GrabNow(under_test, id, 3, later).code, ErrorCode::kGone);
  EXPECT_EQ(GrabNow(under_test, id, 2, later).code, ErrorCode::kConflict);

  EXPECT_EQ(under_test.store().Sweep(later, 0, 0ms).closed, 1u);
  EXPECT_EQ(under_test.store().Sweep(later, 0, 0ms).closed, 0u) << "closed once";
  EXPECT_EQ(GrabNow(under_test, id, 4).code, ErrorCode::kGone)
      << "closed even for `now` before expiry";

  const auto refunds = under_test.sink.events(LedgerEvent::Type::kRefund);
  ASSERT_EQ(refunds.size(), 1u) << "exactly one refund";
  EXPECT_EQ(refunds[0].packet_id, id);
  EXPECT_EQ(refunds[0].user_id, 1) << "to the sender";
  EXPECT_EQ(refunds[0].amount_cents, 60 - early.amount_cents);

  // The memory store marks it refunded from the sink's thread: give it a moment.
  std::optional<PacketSnapshot> snapshot;
  for (int i = 0; i < 100; ++i) {
    snapshot = SnapshotNow(under_test, id);
    if (snapshot && snapshot->record.status == domain::PacketStatus::kRefunded) break;
    std::this_thread::sleep_for(10ms);
  }
  ASSERT_TRUE(snapshot);
  EXPECT_EQ(snapshot->record.status, domain::PacketStatus::kRefunded);
  EXPECT_EQ(snapshot->record.refund_cents, 60 - early.amount_cents);
  EXPECT_EQ(snapshot->remaining_cents, 60 - early.amount_cents);
}

TYPED_TEST_P(StoreConformanceTest, UnknownPacketIsNotFound) {
  StoreUnderTest& under_test = this->under_test_;
  const domain::PacketId known = under_test.NewPacketId();
  ASSERT_TRUE(AddNow(under_test, MakePacket(known, {5})).ok());
  const GrabResult result = GrabNow(under_test, 987654321, 1);
  EXPECT_EQ(result.code, ErrorCode::kNotFound);
  EXPECT_FALSE(SnapshotNow(under_test, 987654321));
  EXPECT_TRUE(SnapshotNow(under_test, known));
}

TYPED_TEST_P(StoreConformanceTest, AddIsIdempotentAndKeepsRecoveredGrabs) {
  StoreUnderTest& under_test = this->under_test_;
  const domain::PacketId id = under_test.NewPacketId();
  auto packet = MakePacket(id, {10, 20, 30, 40});
  packet.grabs.push_back({7, 10, 1, domain::Clock::now()});
  ASSERT_TRUE(AddNow(under_test, packet).ok());
  ASSERT_TRUE(AddNow(under_test, packet).ok());
  const GrabResult repeat = GrabNow(under_test, id, 7);
  EXPECT_EQ(repeat.code, ErrorCode::kConflict);
  EXPECT_EQ(repeat.amount_cents, 10);
  const GrabResult next = GrabNow(under_test, id, 8);
  ASSERT_EQ(next.code, ErrorCode::kOk) << next.message;
  EXPECT_EQ(next.seq, 2);
  EXPECT_EQ(next.amount_cents, 20);
  ASSERT_TRUE(AddNow(under_test, packet).ok());  // again, after a grab: nothing is reloaded
  const GrabResult third = GrabNow(under_test, id, 9);
  EXPECT_EQ(third.seq, 3);
  EXPECT_EQ(third.amount_cents, 30);
}

REGISTER_TYPED_TEST_SUITE_P(StoreConformanceTest, StampedeOf500UsersOn100SharesGivesEachShareOnce,
                            RepeatIsConflictWithTheFirstAmount, ExclusivePacketIsForbiddenToOthers,
                            ExpiryIsGoneAndSweepRefundsTheRestOnce, UnknownPacketIsNotFound,
                            AddIsIdempotentAndKeepsRecoveredGrabs);

}  // namespace redpacket::store
