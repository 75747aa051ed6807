// A lease with a fencing token: elects the single active holder of a role (the sweeper) among
// many API servers, RedLock's useful form. Blocking calls; implementations are thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string_view>

#include "domain/status.h"

namespace redpacket::lease {

using domain::Result;
using domain::Status;

// One named lease. A holder that got a token may act until `ttl` after it *sent* the call that
// returned it (not after the call returned: the time in flight counts against it), and must pass
// the token to every resource it acts on, which refuses tokens lower than the highest it saw:
// a holder paused past its ttl (GC, swap, SIGSTOP) then wakes with a stale token and is refused.
class Lease {
 public:
  virtual ~Lease() = default;

  // Takes the lease for `holder` when it is free (never taken, released or expired), or renews
  // it when `holder` holds it, for `ttl` from now. Returns the fencing token when `holder` holds
  // it after the call, nullopt when someone else does. The token strictly increases with each
  // new holder; a renewal keeps it. Errors: kBadRequest (empty holder, ttl <= 0), kUnavailable
  // (store unreachable or the acquisition not replicated: the caller does not hold the lease,
  // and a retry by the same holder renews it if the acquisition did happen).
  virtual Result<std::optional<std::uint64_t>> TryAcquire(std::string_view holder,
                                                          std::chrono::milliseconds ttl) = 0;

  // Frees the lease if `holder` holds it. Not held by anyone (released, expired): ok, nothing
  // done. Held by someone else: kConflict, nothing done. kUnavailable as TryAcquire.
  virtual Status Release(std::string_view holder) = 0;
};

}  // namespace redpacket::lease
