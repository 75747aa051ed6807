// The rules of a grab and their wording.
#include "domain/grab_rules.h"

namespace redpacket::domain {

GrabDecision DecideGrab(const GrabFacts& facts, UserId user_id, TimePoint now) {
  if (facts.receiver_id && *facts.receiver_id != user_id) return GrabDecision::kForbidden;
  // One grab per user (invariant 2, docs/invariants.md), answered before emptiness or expiry.
  if (facts.already_grabbed) return GrabDecision::kAlreadyGrabbed;
  if (facts.status == PacketStatus::kExpired || facts.status == PacketStatus::kRefunded ||
      now >= facts.expires_at) {
    return GrabDecision::kExpired;
  }
  // No oversell (invariant 1): the seq-th grab takes shares[seq - 1]; there are count shares.
  if (facts.status == PacketStatus::kExhausted || facts.taken >= facts.count) {
    return GrabDecision::kEmpty;
  }
  return GrabDecision::kTake;
}

Error GrabRefusal(GrabDecision decision) {
  switch (decision) {
    case GrabDecision::kForbidden:
      return MakeError(ErrorCode::kForbidden, "this packet is for another user");
    case GrabDecision::kAlreadyGrabbed:
      return MakeError(ErrorCode::kConflict, "you already grabbed this packet");
    case GrabDecision::kExpired:
      return MakeError(ErrorCode::kGone, "the packet has expired");
    case GrabDecision::kEmpty:
      return MakeError(ErrorCode::kGone, "the packet is empty");
    case GrabDecision::kTake:
      break;
  }
  return MakeError(ErrorCode::kInternal, "a grab to take is not a refusal");
}

}  // namespace redpacket::domain
