// The rules of a grab, decided once for every store: in the API's order, an exclusive packet
// refuses other users (403), a user who already grabbed gets their first grab back (409, before
// emptiness or expiry), an expired or refunded packet is gone (410), an empty one is gone (410).
// The stores hold the facts and act on the decision; the Redis grab script applies the same
// order atomically inside Redis (src/store/redis/lua/grab.lua) and its outcomes map onto these.
// Pure; thread-safe.
#pragma once

#include <optional>

#include "domain/status.h"
#include "domain/types.h"

namespace redpacket::domain {

enum class GrabDecision {
  kTake,            // hand out the next share
  kForbidden,       // an exclusive packet of another user
  kAlreadyGrabbed,  // this user's first grab answers (409 with its amount)
  kExpired,         // past expiry, expired or refunded
  kEmpty,           // every share handed out
};

// What a store knows about the packet when a grab arrives.
struct GrabFacts {
  std::optional<UserId> receiver_id;
  bool already_grabbed = false;  // this user has a grab of this packet
  PacketStatus status = PacketStatus::kOpen;
  TimePoint expires_at;
  std::int64_t taken = 0;  // shares handed out
  std::int64_t count = 0;  // shares in all
};

GrabDecision DecideGrab(const GrabFacts& facts, UserId user_id, TimePoint now);

// The API's error for a refusal (kTake has none: kInternal if asked).
Error GrabRefusal(GrabDecision decision);

}  // namespace redpacket::domain
