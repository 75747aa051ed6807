// The rules of a deposit, written once for every ledger: who may be credited, how much, and the
// bound on all the money there is. Pure; thread-safe.
#pragma once

#include "domain/status.h"
#include "domain/types.h"

namespace redpacket::domain {

// A deposit names a user id in 1..kMaxUserId and a positive amount. kBadRequest otherwise.
Status CheckDeposit(UserId user_id, Cents amount_cents);

// The bound on all the money there is: a deposit of `amount_cents` when every deposit so far
// sums to `deposited_cents` must keep the sum at most kMaxTotalDepositsCents (so no balance, and
// no credit, can ever pass it). kBadRequest naming what may still be deposited otherwise.
Status CheckDepositWithinTotal(Cents deposited_cents, Cents amount_cents);

}  // namespace redpacket::domain
