// The money rules of domain/ as every ledger answers them (see ledger_conformance.h): the
// idempotency protocol (request_id limits, the key, the repeat's answer, a key without a
// fingerprint), the deposit rules and the event rules. Each case holds a ledger's answer against
// the domain function's own, code and message, so two ledgers that pass answer alike.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "domain/deposit_rules.h"
#include "domain/event_rules.h"
#include "domain/idempotency.h"
#include "tests/ledger/ledger_conformance.h"

namespace redpacket::ledger::testing {
namespace {

std::string Repeat(std::string_view text, int times) {
  std::string repeated;
  for (int i = 0; i < times; ++i) repeated += text;
  return repeated;
}

// The failure of a Result or Status, or a kOk error when it succeeded.
template <class Answer>
domain::Error ErrorOf(const Answer& answer) {
  return answer.ok() ? domain::Error{ErrorCode::kOk, ""} : answer.error();
}

void ExpectSameError(const domain::Error& actual, const domain::Status& expected) {
  ASSERT_FALSE(expected.ok());
  EXPECT_EQ(actual.code, expected.error().code) << actual.message;
  EXPECT_EQ(actual.message, expected.error().message);
}

}  // namespace

TEST_P(LedgerConformance, RequestIdsAreOneToSixtyFourCharactersInEveryLedger) {
  const std::string too_long = Repeat("a", 65);
  ExpectSameError(ErrorOf(ledger_->Deposit(1, 100, too_long)), domain::CheckRequestId(too_long));
  ExpectSameError(ErrorOf(ledger_->Deposit(1, 100, "\xff")), domain::CheckRequestId("\xff"));
  EXPECT_EQ(BalanceOf(1), 0);
  // Characters, not bytes: 64 emoji are 256 bytes of UTF-8 and one request_id.
  const std::string emoji = Repeat("🧧", 64);
  EXPECT_EQ(*ledger_->Deposit(1, 100, emoji), 100);
  EXPECT_EQ(*ledger_->Deposit(1, 100, emoji), 100);  // a repeat, found by the whole key
  EXPECT_EQ(ErrorOf(ledger_->Deposit(1, 5, emoji)).code, ErrorCode::kIdempotencyConflict);
  EXPECT_EQ(BalanceOf(1), 100);

  ExpectSameError(ErrorOf(TryCreatePacket(Spec(1, {10, 20}), {10, 20}, too_long)),
                  domain::CheckRequestId(too_long));
  EXPECT_EQ(BalanceOf(1), 100);  // nothing debited
  const std::string cjk = Repeat("福", 64);
  auto created = TryCreatePacket(Spec(1, {10, 20}), {10, 20}, cjk);
  ASSERT_TRUE(created.ok()) << created.error().message;
  auto repeat = TryCreatePacket(Spec(1, {10, 20}), {10, 20}, cjk);
  ASSERT_TRUE(repeat.ok()) << repeat.error().message;
  EXPECT_EQ(repeat->packet_id, created->packet_id);
  EXPECT_EQ(BalanceOf(1), 70);

  // In a group commit, the bad request_id fails its write alone.
  const std::vector<Write> writes = {DepositWrite{2, 5, too_long}, DepositWrite{2, 7, "d-2"}};
  std::vector<WriteResult> results = ledger_->WriteBatch(writes);
  ExpectSameError(ErrorOf(std::get<ledger::DepositWrite::Answer>(results[0])),
                  domain::CheckRequestId(too_long));
  EXPECT_EQ(*std::get<ledger::DepositWrite::Answer>(results[1]), 7);
  ExpectConsistentAudit();
}

// A repeat answers what the first call answered (not what is true now) and writes nothing.
TEST_P(LedgerConformance, ARepeatGetsTheFirstAnswerAndWritesNothing) {
  EXPECT_EQ(*ledger_->Deposit(1, 500, "d-1"), 500);
  EXPECT_EQ(*ledger_->Deposit(1, 100, "d-2"), 600);
  EXPECT_EQ(*ledger_->Deposit(1, 500, "d-1"), 500);  // the first answer, though 600 now
  EXPECT_EQ(BalanceOf(1), 600);

  auto first = TryCreatePacket(Spec(1, {10, 20}), {10, 20}, "p-1");
  ASSERT_TRUE(first.ok()) << first.error().message;
  EXPECT_FALSE(first->repeated);
  ASSERT_TRUE(ledger_->ApplyEvents(std::vector{GrabEvent(first->packet_id, 2, 10, 1)}, At(1)).ok());
  auto again = TryCreatePacket(Spec(1, {10, 20}), {10, 20}, "p-1");
  ASSERT_TRUE(again.ok()) << again.error().message;
  EXPECT_TRUE(again->repeated);  // the caller must not load it again
  EXPECT_EQ(again->packet_id, first->packet_id);
  EXPECT_EQ(again->shares, first->shares);
  EXPECT_EQ(again->grabs.size(), 1u);  // the packet as it stands
  EXPECT_EQ(BalanceOf(1), 570);

  auto facts = ledger_->ReadAuditFacts();
  ASSERT_TRUE(facts.ok()) << facts.error().message;
  EXPECT_EQ(facts->deposits_cents, 600);
  EXPECT_EQ(facts->packets.size(), 1u);
  ExpectConsistentAudit();
}

// The key is (user, request_id, kind of write): the same request_id names a deposit and a
// packet of one user, or the deposits of two users, without a conflict.
TEST_P(LedgerConformance, TheIdempotencyKeyIsUserRequestIdAndKindOfWrite) {
  EXPECT_EQ(*ledger_->Deposit(1, 100, "x"), 100);
  auto packet = TryCreatePacket(Spec(1, {40}), {40}, "x");
  ASSERT_TRUE(packet.ok()) << packet.error().message;
  EXPECT_FALSE(packet->repeated);
  EXPECT_EQ(*ledger_->Deposit(2, 100, "x"), 100);
  EXPECT_EQ(BalanceOf(1), 60);
  EXPECT_EQ(BalanceOf(2), 100);
  ExpectConsistentAudit();
}

// A key stored without a fingerprint (the SQLite ledger's schema v1) cannot tell a repeat from
// another request: every ledger refuses it (409, nothing moves) rather than guess.
TEST_P(LedgerConformance, AKeyWithoutAFingerprintMatchesNoRequest) {
  EXPECT_EQ(*ledger_->Deposit(1, 500, "d-1"), 500);
  auto packet = TryCreatePacket(Spec(1, {10, 20}), {10, 20}, "p-1");
  ASSERT_TRUE(packet.ok()) << packet.error().message;
  backend_->ExecuteBehindTheLedger("UPDATE idempotency SET fingerprint = ''");
  ledger_ = Open();
  EXPECT_EQ(ErrorOf(ledger_->Deposit(1, 500, "d-1")).code, ErrorCode::kIdempotencyConflict);
  EXPECT_EQ(ErrorOf(TryCreatePacket(Spec(1, {10, 20}), {10, 20}, "p-1")).code,
            ErrorCode::kIdempotencyConflict);
  EXPECT_EQ(BalanceOf(1), 470);
  ExpectConsistentAudit();
}

TEST_P(LedgerConformance, DepositRulesAnswerAsTheDomainSays) {
  struct Bad {
    UserId user_id;
    Cents amount_cents;
  };
  for (const Bad bad :
       {Bad{0, 10}, Bad{-1, 10}, Bad{domain::kMaxUserId + 1, 10}, Bad{1, 0}, Bad{1, -10}}) {
    ExpectSameError(ErrorOf(ledger_->Deposit(bad.user_id, bad.amount_cents, "d")),
                    domain::CheckDeposit(bad.user_id, bad.amount_cents));
  }
  // The bound on all deposits, and its wording.
  constexpr Cents kMax = domain::kMaxTotalDepositsCents;
  ASSERT_TRUE(ledger_->Deposit(1, kMax - 10, "").ok());
  ExpectSameError(ErrorOf(ledger_->Deposit(2, 11, "d")),
                  domain::CheckDepositWithinTotal(kMax - 10, 11));
  // None of the refused deposits used its request_id.
  EXPECT_EQ(*ledger_->Deposit(2, 10, "d"), 10);
  ExpectConsistentAudit();
}

// Every refused event is named as domain::CheckEvent names it, whatever the ledger.
TEST_P(LedgerConformance, RefusedEventsAreNamedAsTheDomainSays) {
  const PacketRecord packet = CreatePacket(1, {5, 6});
  const PacketId id = packet.packet_id;
  const domain::PacketShape shape{.sender_id = 1, .total_cents = 11, .shares = packet.shares};
  struct Case {
    LedgerEvent event;
    const domain::PacketShape* packet;
  };
  for (const Case& refused :
       {Case{GrabEvent(99, 3, 5, 1), nullptr}, Case{RefundEvent(99, 1, 5), nullptr},
        Case{GrabEvent(id, 3, 5, 2), &shape}, Case{GrabEvent(id, 3, 5, 0), &shape},
        Case{GrabEvent(id, 3, 5, 3), &shape}, Case{RefundEvent(id, 4, 6), &shape},
        Case{RefundEvent(id, 1, 12), &shape}}) {
    Status status = ledger_->ApplyEvents(std::vector{GrabEvent(id, 2, 5, 1), refused.event}, At(2));
    ExpectSameError(ErrorOf(status), domain::CheckEvent(refused.event, refused.packet));
    EXPECT_EQ(BalanceOf(2), 0);  // the batch rolled back whole
  }
  EXPECT_EQ(AppliedPosition(), 0u);
  ExpectConsistentAudit();
}

}  // namespace redpacket::ledger::testing
