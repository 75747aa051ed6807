// The idempotency protocol (domain/idempotency.h): the request_id's limits as the API states them,
// fingerprints, and the decision on a key already used: the first answer for the same request,
// 409 for another, 409 for a legacy row without a fingerprint. Both ledgers store the rows; the
// conformance suite (tests/ledger) checks that they answer alike.
#include <gtest/gtest.h>

#include <string>

#include "domain/idempotency.h"

namespace redpacket::domain {
namespace {

ErrorCode CodeOf(const Status& status) {
  return status.ok() ? ErrorCode::kOk : status.error().code;
}

std::string Repeat(std::string_view text, int times) {
  std::string repeated;
  for (int i = 0; i < times; ++i) repeated += text;
  return repeated;
}

PacketSpec Spec() {
  PacketSpec spec;
  spec.sender_id = 1;
  spec.kind = PacketKind::kLucky;
  spec.total_cents = 100;
  spec.count = 3;
  spec.greeting = "恭喜发财";
  spec.expires_in_s = 86400;
  return spec;
}

TEST(RequestIdRules, OneToSixtyFourCharactersOfUtf8OrNone) {
  EXPECT_TRUE(CheckRequestId("").ok());  // none
  EXPECT_TRUE(CheckRequestId("d-1").ok());
  EXPECT_TRUE(CheckRequestId(Repeat("a", 64)).ok());
  EXPECT_EQ(CodeOf(CheckRequestId(Repeat("a", 65))), ErrorCode::kBadRequest);
  // Characters, not bytes: 64 CJK characters (192 bytes), 64 emoji (256 bytes) are 64.
  EXPECT_TRUE(CheckRequestId(Repeat("福", 64)).ok());
  EXPECT_TRUE(CheckRequestId(Repeat("🧧", 64)).ok());
  EXPECT_EQ(CodeOf(CheckRequestId(Repeat("🧧", 65))), ErrorCode::kBadRequest);
  EXPECT_EQ(CheckRequestId(Repeat("a", 65)).error().message,
            "request_id must be 1 to 64 characters of UTF-8");
}

TEST(RequestIdRules, BytesThatAreNotUtf8AreRefused) {
  for (std::string bad : {std::string("\xff"), std::string("a\x80"), std::string("\xc3"),
                          std::string("\xc0\xaf"),             // overlong '/'
                          std::string("\xed\xa0\x80"),         // a surrogate
                          std::string("\xf4\x90\x80\x80")}) {  // past U+10FFFF
    EXPECT_EQ(CodeOf(CheckRequestId(bad)), ErrorCode::kBadRequest) << bad.size();
  }
}

TEST(Fingerprints, AreStableAndBindEveryFieldOfTheRequest) {
  // Stored in ledgers: these exact texts must never change.
  EXPECT_EQ(DepositFingerprint(500), "deposit:500");
  EXPECT_EQ(PacketFingerprint(Spec()), "packet:lucky:100:3:86400:-:恭喜发财");
  PacketSpec exclusive = Spec();
  exclusive.receiver_id = 9;
  exclusive.count = 1;
  EXPECT_EQ(PacketFingerprint(exclusive), "packet:lucky:100:1:86400:9:恭喜发财");
  for (auto change : std::initializer_list<void (*)(PacketSpec&)>{
           [](PacketSpec& s) { s.kind = PacketKind::kEqual; },
           [](PacketSpec& s) { s.total_cents += 1; }, [](PacketSpec& s) { s.count += 1; },
           [](PacketSpec& s) { s.expires_in_s -= 1; }, [](PacketSpec& s) { s.receiver_id = 2; },
           [](PacketSpec& s) { s.greeting += "!"; }}) {
    PacketSpec other = Spec();
    change(other);
    EXPECT_NE(PacketFingerprint(other), PacketFingerprint(Spec()));
  }
}

TEST(IdempotencyProtocol, TheKeysOfTheTwoWrites) {
  const IdempotentRequest deposit = IdempotentRequest::Deposit(7, "d-1", 500);
  EXPECT_EQ(deposit.user_id, 7);
  EXPECT_EQ(deposit.kind, "deposit");
  EXPECT_EQ(deposit.request_id, "d-1");
  EXPECT_EQ(deposit.fingerprint, "deposit:500");
  const IdempotentRequest create = IdempotentRequest::CreatePacket(Spec(), "p-1");
  EXPECT_EQ(create.user_id, 1);  // the sender's key
  EXPECT_EQ(create.kind, "create_packet");
  EXPECT_EQ(create.fingerprint, PacketFingerprint(Spec()));
}

// The checks both ledgers make before a write, in their order: the write's own rules first, then
// the request_id; what passes is bound to the same key as above.
TEST(IdempotencyProtocol, AWriteIsCheckedBeforeItIsBoundToItsRequestId) {
  const auto deposit = CheckedDeposit(7, 500, "d-1");
  ASSERT_TRUE(deposit.ok());
  EXPECT_EQ(deposit->fingerprint, "deposit:500");
  EXPECT_EQ(deposit->user_id, 7);
  const auto create = CheckedCreatePacket(Spec(), {30, 30, 40}, "p-1");
  ASSERT_TRUE(create.ok());
  EXPECT_EQ(create->fingerprint, PacketFingerprint(Spec()));
  EXPECT_EQ(create->kind, "create_packet");
  EXPECT_TRUE(CheckedDeposit(7, 500, "").ok());  // no request_id: nothing to bind, still checked

  const std::string too_long(kMaxRequestIdCharacters + 1, 'r');
  for (const auto& refused :
       {CheckedDeposit(7, 0, "d-1"), CheckedDeposit(0, 500, "d-1"), CheckedDeposit(7, 500, too_long),
        CheckedCreatePacket(Spec(), {30, 30, 40}, "\xff")}) {
    ASSERT_FALSE(refused.ok());
    EXPECT_EQ(refused.error().code, ErrorCode::kBadRequest) << refused.error().message;
  }
  // Shares are the server's own split: ones that do not fit their packet are its bug.
  for (const auto& refused :
       {CheckedCreatePacket(Spec(), {30, 30}, "p-1"), CheckedCreatePacket(Spec(), {0, 60, 40}, "")}) {
    ASSERT_FALSE(refused.ok());
    EXPECT_EQ(refused.error().code, ErrorCode::kInternal) << refused.error().message;
  }
}

TEST(IdempotencyProtocol, AFirstCallGoesOnARepeatGetsTheFirstAnswer) {
  const IdempotentRequest request = IdempotentRequest::Deposit(7, "d-1", 500);
  auto first = EarlierAnswer(request, std::nullopt);
  ASSERT_TRUE(first.ok());
  EXPECT_FALSE(first->has_value());
  auto repeat = EarlierAnswer(request, StoredAnswer{"1500", "deposit:500"});
  ASSERT_TRUE(repeat.ok());
  EXPECT_EQ(*repeat, std::optional<std::int64_t>(1500));
}

TEST(IdempotencyProtocol, AnotherRequestUnderTheKeyIsAConflict) {
  const IdempotentRequest request = IdempotentRequest::Deposit(7, "d-1", 500);
  auto other = EarlierAnswer(request, StoredAnswer{"1500", "deposit:400"});
  ASSERT_FALSE(other.ok());
  EXPECT_EQ(other.error().code, ErrorCode::kIdempotencyConflict);
  EXPECT_EQ(other.error().message, "request_id 'd-1' was used for a different request");
}

// A row without a fingerprint (the SQLite ledger's schema v1) cannot tell a repeat from another
// request: refused, never answered for a request the ledger did not see.
TEST(IdempotencyProtocol, ALegacyRowWithoutAFingerprintMatchesNoRequest) {
  const IdempotentRequest request = IdempotentRequest::Deposit(7, "d-1", 500);
  auto legacy = EarlierAnswer(request, StoredAnswer{"1500", ""});
  ASSERT_FALSE(legacy.ok());
  EXPECT_EQ(legacy.error().code, ErrorCode::kIdempotencyConflict);
}

TEST(IdempotencyProtocol, AStoredResultThatIsNoIntegerIsCorrupt) {
  const IdempotentRequest request = IdempotentRequest::Deposit(7, "d-1", 500);
  for (const char* result : {"", "12x", "x", "99999999999999999999"}) {
    auto corrupt = EarlierAnswer(request, StoredAnswer{result, "deposit:500"});
    ASSERT_FALSE(corrupt.ok()) << result;
    EXPECT_EQ(corrupt.error().code, ErrorCode::kInternal);
  }
}

TEST(IdempotencyProtocol, ARepeatedCreateAnswersTheFirstPacketMarkedRepeated) {
  PacketRecord first;
  first.packet_id = 42;
  first.spec = Spec();
  auto repeated = RepeatedCreate(42, std::optional<PacketRecord>(first));
  ASSERT_TRUE(repeated.ok());
  EXPECT_EQ(repeated->packet_id, 42);
  EXPECT_TRUE(repeated->repeated);
  auto missing = RepeatedCreate(42, std::optional<PacketRecord>());
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, ErrorCode::kInternal);
  auto unreadable = RepeatedCreate(42, MakeError(ErrorCode::kUnavailable, "disk"));
  ASSERT_FALSE(unreadable.ok());
  EXPECT_EQ(unreadable.error().code, ErrorCode::kUnavailable);
}

}  // namespace
}  // namespace redpacket::domain
