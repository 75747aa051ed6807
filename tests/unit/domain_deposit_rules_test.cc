// The rules of a deposit (domain/deposit_rules.h), and the shares' and the sender's funds' checks
// (domain/packet.h): what is a bad request, and the bound on all the money there is, to the cent.
#include <gtest/gtest.h>

#include "domain/deposit_rules.h"
#include "domain/packet.h"

namespace redpacket::domain {
namespace {

ErrorCode CodeOf(const Status& status) {
  return status.ok() ? ErrorCode::kOk : status.error().code;
}

TEST(DepositRules, AUserInRangeAndAPositiveAmount) {
  EXPECT_TRUE(CheckDeposit(1, 1).ok());
  EXPECT_TRUE(CheckDeposit(kMaxUserId, kMaxTotalDepositsCents).ok());
  EXPECT_EQ(CodeOf(CheckDeposit(0, 1)), ErrorCode::kBadRequest);
  EXPECT_EQ(CodeOf(CheckDeposit(-1, 1)), ErrorCode::kBadRequest);
  EXPECT_EQ(CodeOf(CheckDeposit(kMaxUserId + 1, 1)), ErrorCode::kBadRequest);
  EXPECT_EQ(CheckDeposit(kMaxUserId + 1, 1).error().message, "user_id out of range");
  EXPECT_EQ(CodeOf(CheckDeposit(1, 0)), ErrorCode::kBadRequest);
  EXPECT_EQ(CheckDeposit(1, -5).error().message, "amount_cents must be positive");
}

TEST(DepositRules, AllDepositsTogetherStayWithinTheMostMoneyTheSystemHolds) {
  EXPECT_TRUE(CheckDepositWithinTotal(0, kMaxTotalDepositsCents).ok());
  EXPECT_TRUE(CheckDepositWithinTotal(kMaxTotalDepositsCents - 10, 10).ok());
  Status over = CheckDepositWithinTotal(kMaxTotalDepositsCents - 10, 11);
  ASSERT_FALSE(over.ok());
  EXPECT_EQ(over.error().code, ErrorCode::kBadRequest);
  EXPECT_NE(over.error().message.find("10 cents may still be deposited"), std::string::npos)
      << over.error().message;
  // Past the bound already (never written, but never a negative room either).
  Status full = CheckDepositWithinTotal(kMaxTotalDepositsCents + 5, 1);
  ASSERT_FALSE(full.ok());
  EXPECT_NE(full.error().message.find("0 cents may still be deposited"), std::string::npos);
}

TEST(ShareRules, TheSharesAreExactlyWhatThePacketPromises) {
  PacketSpec spec;
  spec.total_cents = 60;
  spec.count = 3;
  EXPECT_TRUE(CheckShares(spec, {10, 20, 30}).ok());
  EXPECT_EQ(CodeOf(CheckShares(spec, {10, 50})), ErrorCode::kInternal);      // too few
  EXPECT_EQ(CodeOf(CheckShares(spec, {10, 20, 31})), ErrorCode::kInternal);  // money made
  EXPECT_EQ(CodeOf(CheckShares(spec, {10, 20, 29})), ErrorCode::kInternal);  // money lost
  EXPECT_EQ(CodeOf(CheckShares(spec, {0, 30, 30})), ErrorCode::kInternal);   // a share of 0
  EXPECT_EQ(CodeOf(CheckShares(spec, {-10, 35, 35})), ErrorCode::kInternal);
  // A sum that would overflow is refused, not wrapped around.
  spec.total_cents = kMaxTotalDepositsCents;
  spec.count = 2;
  EXPECT_EQ(CodeOf(CheckShares(spec, {INT64_MAX, INT64_MAX})), ErrorCode::kInternal);
}

TEST(FundsRules, TheSenderPaysTheWholePacketUpFront) {
  PacketSpec spec;
  spec.total_cents = 120;
  spec.count = 2;
  EXPECT_TRUE(CheckFunds(120, spec).ok());
  EXPECT_TRUE(CheckFunds(500, spec).ok());
  Status short_by_one = CheckFunds(119, spec);
  ASSERT_FALSE(short_by_one.ok());
  EXPECT_EQ(short_by_one.error().code, ErrorCode::kInsufficientFunds);
  EXPECT_EQ(short_by_one.error().message, "balance is 119 cents, the packet needs 120");
  EXPECT_EQ(CodeOf(CheckFunds(0, spec)), ErrorCode::kInsufficientFunds);  // no account yet
}

}  // namespace
}  // namespace redpacket::domain
