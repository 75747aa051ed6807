// Packet validation and the share split.
#include "domain/packet.h"

#include <algorithm>

#include <fmt/format.h>

namespace redpacket::domain {

Status ValidatePacketSpec(const PacketSpec& spec, const Limits& limits) {
  auto bad = [](std::string message) { return Status(MakeError(ErrorCode::kBadRequest, std::move(message))); };
  if (spec.count < 1) return bad("count must be at least 1");
  if (spec.count > limits.max_count) return bad(fmt::format("count must be at most {}", limits.max_count));
  if (spec.total_cents < 1) return bad("total_cents must be at least 1");
  if (spec.total_cents > limits.max_total_cents)
    return bad(fmt::format("total_cents must be at most {}", limits.max_total_cents));
  if (spec.count > spec.total_cents) return bad("count must not exceed total_cents (every share is at least 1 cent)");
  if (spec.kind == PacketKind::kEqual && spec.total_cents % spec.count != 0)
    return bad("an equal packet needs total_cents to be a multiple of count");
  if (spec.expires_in_s < limits.min_expires_in_s || spec.expires_in_s > limits.max_expires_in_s)
    return bad(fmt::format("expires_in_s must be between {} and {}", limits.min_expires_in_s,
                           limits.max_expires_in_s));
  if (spec.greeting.size() > limits.max_greeting_bytes)
    return bad(fmt::format("greeting must be at most {} bytes", limits.max_greeting_bytes));
  if (spec.receiver_id) {
    if (*spec.receiver_id < 1 || *spec.receiver_id > kMaxUserId) return bad("receiver_id out of range");
    if (spec.count != 1) return bad("an exclusive packet (receiver_id set) must have count 1");
  }
  return {};
}

std::vector<Cents> SplitLucky(Cents total, std::int64_t count, RandomSource& random) {
  std::vector<Cents> shares(static_cast<std::size_t>(count));
  Cents remaining = total;
  for (std::int64_t i = 0; i < count - 1; ++i) {
    const std::int64_t left = count - i;
    // Cap: the (left - 1) later shares must each still get at least 1 cent.
    const Cents high = std::min(2 * remaining / left, remaining - (left - 1));
    const Cents draw = random.Between(1, std::max<Cents>(high, 1));
    shares[static_cast<std::size_t>(i)] = draw;
    remaining -= draw;
  }
  shares.back() = remaining;
  // Fisher-Yates: later draws are larger on average; shuffling makes every position alike.
  for (std::size_t i = shares.size() - 1; i > 0; --i) {
    std::swap(shares[i], shares[random.Below(i + 1)]);
  }
  return shares;
}

std::vector<Cents> SplitEqual(Cents total, std::int64_t count) {
  return std::vector<Cents>(static_cast<std::size_t>(count), total / count);
}

std::vector<Cents> SplitShares(const PacketSpec& spec, RandomSource& random) {
  return spec.kind == PacketKind::kEqual ? SplitEqual(spec.total_cents, spec.count)
                                         : SplitLucky(spec.total_cents, spec.count, random);
}

Status CheckShares(const PacketSpec& spec, const std::vector<Cents>& shares) {
  auto wrong = [](std::string message) {
    return Status(MakeError(ErrorCode::kInternal, std::move(message)));
  };
  if (spec.count < 1 || shares.size() != static_cast<std::size_t>(spec.count)) {
    return wrong(fmt::format("{} shares for a packet of count {}", shares.size(), spec.count));
  }
  Cents sum = 0;
  for (Cents share : shares) {
    // Compared with what is left rather than summed first: a sum could overflow.
    if (share < 1 || share > spec.total_cents - sum) {
      return wrong("every share must be at least 1 cent and the shares must sum to the total");
    }
    sum += share;
  }
  if (sum != spec.total_cents) {
    return wrong(
        fmt::format("the shares sum to {}, the packet's total is {}", sum, spec.total_cents));
  }
  return {};
}

Status CheckFunds(Cents balance_cents, const PacketSpec& spec) {
  if (balance_cents >= spec.total_cents) return {};
  return MakeError(
      ErrorCode::kInsufficientFunds,
      fmt::format("balance is {} cents, the packet needs {}", balance_cents, spec.total_cents));
}

LedgerEvent LedgerEvent::Grab(PacketId packet_id, UserId user_id, Cents amount_cents,
                              std::int64_t seq, std::int64_t at_millis) {
  return LedgerEvent{.type = Type::kGrab,
                     .packet_id = packet_id,
                     .user_id = user_id,
                     .amount_cents = amount_cents,
                     .seq = seq,
                     .at_millis = at_millis};
}

LedgerEvent LedgerEvent::Refund(PacketId packet_id, UserId sender_id, Cents amount_cents,
                                std::int64_t at_millis) {
  return LedgerEvent{.type = Type::kRefund,
                     .packet_id = packet_id,
                     .user_id = sender_id,
                     .amount_cents = amount_cents,
                     .seq = 0,
                     .at_millis = at_millis};
}

std::string LedgerEvent::EventId() const {
  return type == Type::kGrab ? fmt::format("g-{}-{}", packet_id, user_id) : fmt::format("r-{}", packet_id);
}

}  // namespace redpacket::domain
