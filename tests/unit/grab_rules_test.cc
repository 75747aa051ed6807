// The rules of a grab: every refusal, and their order (forbidden, then already grabbed before
// expiry or emptiness, then expired before empty).
#include "domain/grab_rules.h"

#include <gtest/gtest.h>

namespace redpacket::domain {
namespace {

const TimePoint kNow = FromUnixMillis(1'800'000'000'000);

GrabFacts Open() {
  return GrabFacts{std::nullopt, false, PacketStatus::kOpen, kNow + std::chrono::minutes(1), 3, 10};
}

TEST(GrabRules, AnOpenPacketWithSharesLeftIsTaken) {
  EXPECT_EQ(DecideGrab(Open(), 7, kNow), GrabDecision::kTake);
}

TEST(GrabRules, RefusalsInTheApisOrder) {
  GrabFacts facts = Open();
  facts.taken = facts.count;  // empty
  EXPECT_EQ(DecideGrab(facts, 7, kNow), GrabDecision::kEmpty);
  facts.expires_at = kNow;  // and expired: expiry is said first
  EXPECT_EQ(DecideGrab(facts, 7, kNow), GrabDecision::kExpired);
  facts.already_grabbed = true;  // and this user grabbed it: 409 before either
  EXPECT_EQ(DecideGrab(facts, 7, kNow), GrabDecision::kAlreadyGrabbed);
  facts.receiver_id = 8;  // and it is another user's: 403 first of all
  EXPECT_EQ(DecideGrab(facts, 7, kNow), GrabDecision::kForbidden);
  EXPECT_EQ(DecideGrab(facts, 8, kNow), GrabDecision::kAlreadyGrabbed);
}

TEST(GrabRules, ExpiredOrRefundedStatusIsGoneEvenBeforeTheTime) {
  for (PacketStatus status : {PacketStatus::kExpired, PacketStatus::kRefunded}) {
    GrabFacts facts = Open();
    facts.status = status;
    EXPECT_EQ(DecideGrab(facts, 7, kNow), GrabDecision::kExpired);
  }
  GrabFacts exhausted = Open();
  exhausted.status = PacketStatus::kExhausted;
  EXPECT_EQ(DecideGrab(exhausted, 7, kNow), GrabDecision::kEmpty);
}

TEST(GrabRules, EachRefusalHasTheApisCodeAndWords) {
  EXPECT_EQ(GrabRefusal(GrabDecision::kForbidden).code, ErrorCode::kForbidden);
  EXPECT_EQ(GrabRefusal(GrabDecision::kAlreadyGrabbed).code, ErrorCode::kConflict);
  EXPECT_EQ(GrabRefusal(GrabDecision::kExpired).code, ErrorCode::kGone);
  EXPECT_EQ(GrabRefusal(GrabDecision::kEmpty).code, ErrorCode::kGone);
  EXPECT_EQ(GrabRefusal(GrabDecision::kEmpty).message, "the packet is empty");
  EXPECT_EQ(GrabRefusal(GrabDecision::kTake).code, ErrorCode::kInternal);
}

}  // namespace
}  // namespace redpacket::domain
