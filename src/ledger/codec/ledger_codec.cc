// Ledger encodings shared by the SQLite and MariaDB ledgers.
#include "ledger/codec/ledger_codec.h"

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <charconv>
#include <cstring>
#include <limits>

namespace redpacket::ledger::codec {
namespace {

using domain::ErrorCode;
using domain::MakeError;

domain::Error Corrupt(std::string message) {
  return MakeError(ErrorCode::kInternal, std::move(message));
}

}  // namespace

std::vector<std::byte> EncodeShares(const std::vector<Cents>& shares) {
  std::vector<std::byte> blob(shares.size() * sizeof(Cents));
  if constexpr (std::endian::native == std::endian::little) {
    if (!shares.empty()) std::memcpy(blob.data(), shares.data(), blob.size());
  } else {
    for (std::size_t i = 0; i < shares.size(); ++i) {
      const auto value = static_cast<std::uint64_t>(shares[i]);
      for (std::size_t b = 0; b < sizeof(Cents); ++b) {
        blob[i * sizeof(Cents) + b] = static_cast<std::byte>(value >> (8 * b));
      }
    }
  }
  return blob;
}

domain::Result<std::vector<Cents>> DecodeShares(std::span<const std::byte> blob,
                                                domain::PacketId packet_id, std::int64_t count) {
  if (count < 0 || blob.size() != static_cast<std::size_t>(count) * sizeof(Cents)) {
    return Corrupt(fmt::format("packet {}: shares blob of {} bytes for {} shares", packet_id,
                               blob.size(), count));
  }
  std::vector<Cents> shares(blob.size() / sizeof(Cents));
  if constexpr (std::endian::native == std::endian::little) {
    if (!shares.empty()) std::memcpy(shares.data(), blob.data(), blob.size());
  } else {
    for (std::size_t i = 0; i < shares.size(); ++i) {
      std::uint64_t value = 0;
      for (std::size_t b = 0; b < sizeof(Cents); ++b) {
        value |= std::uint64_t{std::to_integer<std::uint8_t>(blob[i * sizeof(Cents) + b])}
                 << (8 * b);
      }
      shares[i] = static_cast<Cents>(value);
    }
  }
  return shares;
}

domain::Result<std::int64_t> ParseCursor(std::string_view cursor) {
  if (cursor.empty()) return std::numeric_limits<std::int64_t>::max();
  std::int64_t value = 0;
  const auto [end, error] = std::from_chars(cursor.data(), cursor.data() + cursor.size(), value);
  if (error != std::errc() || end != cursor.data() + cursor.size() || value < 1) {
    return MakeError(ErrorCode::kBadRequest, "malformed cursor");
  }
  return value;
}

std::string DepositFingerprint(Cents amount_cents) {
  return fmt::format("deposit:{}", amount_cents);
}

std::string PacketFingerprint(const domain::PacketSpec& spec) {
  // The greeting goes last: it is the only free text, so no separator inside it can shift a field.
  return fmt::format("packet:{}:{}:{}:{}:{}:{}", domain::ToString(spec.kind), spec.total_cents,
                     spec.count, spec.expires_in_s,
                     spec.receiver_id ? std::to_string(*spec.receiver_id) : std::string("-"),
                     spec.greeting);
}

domain::Status CheckShares(const domain::PacketSpec& spec, const std::vector<Cents>& shares) {
  if (spec.count < 1 || shares.size() != static_cast<std::size_t>(spec.count)) {
    return Corrupt(fmt::format("{} shares for a packet of count {}", shares.size(), spec.count));
  }
  Cents sum = 0;
  for (Cents share : shares) {
    if (share < 1 || share > spec.total_cents - sum) {
      return Corrupt("every share must be at least 1 cent and the shares must sum to the total");
    }
    sum += share;
  }
  if (sum != spec.total_cents) {
    return Corrupt(
        fmt::format("the shares sum to {}, the packet's total is {}", sum, spec.total_cents));
  }
  return {};
}

domain::Status CheckDepositWithinTotal(Cents deposited_cents, Cents amount_cents) {
  const Cents room = std::max<Cents>(0, domain::kMaxTotalDepositsCents - deposited_cents);
  if (amount_cents > room) {
    return MakeError(ErrorCode::kBadRequest,
                     fmt::format("the deposits would total more than {} cents (2^53 - 1), the most "
                                 "money the system holds; {} cents may still be deposited",
                                 domain::kMaxTotalDepositsCents, room));
  }
  return {};
}

}  // namespace redpacket::ledger::codec
