// The rules an event keeps against its packet (domain/event_rules.h): every refusal is kRefused,
// names the event and the rule, and a valid grab or refund passes. The ledgers' conformance suite
// checks that both ledgers apply these rules (tests/ledger).
#include <gtest/gtest.h>

#include <string>

#include "domain/event_rules.h"

namespace redpacket::domain {
namespace {

const PacketShape kPacket{.sender_id = 1, .total_cents = 60, .shares = {10, 20, 30}};

// The error's message, or "" for ok; fails the test when a refusal is not kRefused.
std::string Refusal(const LedgerEvent& event, const PacketShape* packet) {
  Status status = CheckEvent(event, packet);
  if (status.ok()) return "";
  EXPECT_EQ(status.error().code, ErrorCode::kRefused) << status.error().message;
  return status.error().message;
}

TEST(EventRules, TheFactoriesBuildWhatTheyName) {
  EXPECT_EQ(LedgerEvent::Grab(42, 7, 20, 2, 1000), (LedgerEvent{.type = LedgerEvent::Type::kGrab,
                                                                .packet_id = 42,
                                                                .user_id = 7,
                                                                .amount_cents = 20,
                                                                .seq = 2,
                                                                .at_millis = 1000}));
  EXPECT_EQ(LedgerEvent::Refund(42, 1, 30, 2000), (LedgerEvent{.type = LedgerEvent::Type::kRefund,
                                                               .packet_id = 42,
                                                               .user_id = 1,
                                                               .amount_cents = 30,
                                                               .seq = 0,
                                                               .at_millis = 2000}));
  EXPECT_EQ(LedgerEvent::Grab(42, 7, 20, 2, 1000).EventId(), "g-42-7");
  EXPECT_EQ(LedgerEvent::Refund(42, 1, 30, 2000).EventId(), "r-42");
}

TEST(EventRules, AGrabOfItsShareAndARefundToTheSenderPass) {
  for (std::int64_t seq = 1; seq <= 3; ++seq) {
    EXPECT_EQ(Refusal(LedgerEvent::Grab(42, 7, kPacket.shares[seq - 1], seq, 0), &kPacket), "");
  }
  // A refund of nothing (grabbed in full) up to the whole total (nobody grabbed).
  EXPECT_EQ(Refusal(LedgerEvent::Refund(42, 1, 0, 0), &kPacket), "");
  EXPECT_EQ(Refusal(LedgerEvent::Refund(42, 1, 60, 0), &kPacket), "");
}

TEST(EventRules, AGrabMustTakeExactlyTheShareItsSeqNames) {
  EXPECT_EQ(Refusal(LedgerEvent::Grab(42, 7, 10, 0, 0), &kPacket),
            "event g-42-7: seq 0 outside 1..3");
  EXPECT_EQ(Refusal(LedgerEvent::Grab(42, 7, 10, 4, 0), &kPacket),
            "event g-42-7: seq 4 outside 1..3");
  EXPECT_EQ(Refusal(LedgerEvent::Grab(42, 7, 11, 1, 0), &kPacket),
            "event g-42-7: amount 11 but share 1 is 10");
  EXPECT_EQ(Refusal(LedgerEvent::Grab(42, 7, 20, 1, 0), &kPacket),
            "event g-42-7: amount 20 but share 1 is 10");
}

TEST(EventRules, ARefundGoesToTheSenderWithinTheTotal) {
  EXPECT_EQ(Refusal(LedgerEvent::Refund(42, 2, 5, 0), &kPacket),
            "event r-42: refund to user 2 but the sender is 1");
  EXPECT_EQ(Refusal(LedgerEvent::Refund(42, 1, 61, 0), &kPacket),
            "event r-42: refund of 61 cents from a packet of 60");
  EXPECT_EQ(Refusal(LedgerEvent::Refund(42, 1, -1, 0), &kPacket),
            "event r-42: refund of -1 cents from a packet of 60");
}

TEST(EventRules, AnEventOfAPacketTheLedgerDoesNotHoldIsRefused) {
  EXPECT_EQ(Refusal(LedgerEvent::Grab(99, 3, 5, 1, 0), nullptr),
            "event g-99-3: grab of an unknown packet");
  EXPECT_EQ(Refusal(LedgerEvent::Refund(99, 1, 5, 0), nullptr),
            "event r-99: refund of an unknown packet");
}

TEST(EventRules, AnEventOfNoKnownTypeIsRefused) {
  LedgerEvent event = LedgerEvent::Grab(42, 7, 10, 1, 0);
  event.type = static_cast<LedgerEvent::Type>(9);
  EXPECT_NE(Refusal(event, &kPacket).find("unknown type"), std::string::npos);
}

}  // namespace
}  // namespace redpacket::domain
