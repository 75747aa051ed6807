// The rules of a deposit and their wording.
#include "domain/deposit_rules.h"

#include <fmt/format.h>

#include <algorithm>

namespace redpacket::domain {

Status CheckDeposit(UserId user_id, Cents amount_cents) {
  if (user_id < 1 || user_id > kMaxUserId) {
    return MakeError(ErrorCode::kBadRequest, "user_id out of range");
  }
  if (amount_cents < 1) return MakeError(ErrorCode::kBadRequest, "amount_cents must be positive");
  return {};
}

Status CheckDepositWithinTotal(Cents deposited_cents, Cents amount_cents) {
  // Money is conserved, so bounding what comes in bounds every balance and every credit: a grab
  // acknowledged with 200 is never refused by the ledger for an overflow.
  const Cents room = std::max<Cents>(0, kMaxTotalDepositsCents - deposited_cents);
  if (amount_cents > room) {
    return MakeError(ErrorCode::kBadRequest,
                     fmt::format("the deposits would total more than {} cents (2^53 - 1), the most "
                                 "money the system holds; {} cents may still be deposited",
                                 kMaxTotalDepositsCents, room));
  }
  return {};
}

}  // namespace redpacket::domain
