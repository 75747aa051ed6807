// A red packet as the domain sees it: the sender's request (PacketSpec), its validation against
// configurable limits, the split into shares, and the events a packet produces.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "domain/random.h"
#include "domain/status.h"
#include "domain/types.h"

namespace redpacket::domain {

struct Limits {
  std::int64_t max_count = 100;
  Cents max_total_cents = 20000;
  std::int64_t min_expires_in_s = 60;
  std::int64_t max_expires_in_s = 86400;
  std::size_t max_greeting_bytes = 256;
};

struct PacketSpec {
  UserId sender_id = 0;
  PacketKind kind = PacketKind::kLucky;
  Cents total_cents = 0;
  std::int64_t count = 0;
  std::string greeting;
  std::int64_t expires_in_s = 86400;
  std::optional<UserId> receiver_id;  // set: exclusive packet, only this user may grab
};

// 400 with a message naming the first rule broken, or ok.
Status ValidatePacketSpec(const PacketSpec& spec, const Limits& limits);

// Double-mean split (invariant 6, docs/invariants.md): with R cents and n shares left a draw is
// uniform in [1, floor(2R/n)], capped so every later share can still get 1 cent; the last share
// takes the rest. The result is shuffled, so grab order says nothing about the amount. Requires
// 1 <= count <= total.
std::vector<Cents> SplitLucky(Cents total, std::int64_t count, RandomSource& random);
// total / count each; requires total % count == 0.
std::vector<Cents> SplitEqual(Cents total, std::int64_t count);
// Validated spec -> shares.
std::vector<Cents> SplitShares(const PacketSpec& spec, RandomSource& random);

// The shares must be exactly what the packet promises, or money would appear or vanish:
// `count` shares, each >= 1 cent, summing to the total. kInternal otherwise (the caller split
// them wrong: never the client's mistake).
Status CheckShares(const PacketSpec& spec, const std::vector<Cents>& shares);

// The sender pays the whole packet up front: a balance of `balance_cents` (0 for an account that
// does not exist) must cover spec.total_cents. kInsufficientFunds otherwise.
Status CheckFunds(Cents balance_cents, const PacketSpec& spec);

// One successful grab: the seq-th grab of a packet took shares[seq - 1].
struct Grab {
  UserId user_id = 0;
  Cents amount_cents = 0;
  std::int64_t seq = 0;
  TimePoint grabbed_at;
};

// What the ledger must apply after the hot path decided it: a grab credits the grabber, a refund
// credits the sender with what was left at expiry. Applied exactly once: a grab is unique by
// (packet_id, user_id), a refund by packet_id.
struct LedgerEvent {
  enum class Type : std::uint8_t { kGrab = 1, kRefund = 2 };
  Type type = Type::kGrab;
  PacketId packet_id = 0;
  UserId user_id = 0;  // the grabber, or the sender for a refund
  Cents amount_cents = 0;
  std::int64_t seq = 0;  // grab: 1-based order within the packet; refund: 0
  std::int64_t at_millis = 0;

  // The seq-th grab of the packet, which took `amount_cents` (shares[seq - 1]), by `user_id`.
  static LedgerEvent Grab(PacketId packet_id, UserId user_id, Cents amount_cents, std::int64_t seq,
                          std::int64_t at_millis);
  // What was left of the packet at expiry, back to its sender (0 when it was grabbed in full).
  static LedgerEvent Refund(PacketId packet_id, UserId sender_id, Cents amount_cents,
                            std::int64_t at_millis);

  // "g-<packet>-<user>" or "r-<packet>": stable across retries, the dedup key of consumers.
  std::string EventId() const;
  friend bool operator==(const LedgerEvent&, const LedgerEvent&) = default;
};

// For each partition of an event stream, the offset of the last event handled. The local journal
// is one partition (0) whose offsets are its positions; Kafka has one per topic partition.
using PartitionOffsets = std::map<std::int32_t, std::uint64_t>;

}  // namespace redpacket::domain
