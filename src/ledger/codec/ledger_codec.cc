// Ledger encodings shared by the SQLite and MariaDB ledgers.
#include "ledger/codec/ledger_codec.h"

#include <fmt/format.h>

#include <bit>
#include <charconv>
#include <cstring>
#include <limits>

namespace redpacket::ledger::codec {
using domain::ErrorCode;
using domain::MakeError;

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

domain::Error Corrupt(std::string message) {
  return MakeError(ErrorCode::kInternal, std::move(message));
}

domain::Status CheckOffsets(const domain::PartitionOffsets& applied) {
  for (const auto& [partition, offset] : applied) {
    if (partition < 0 ||
        offset > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
      return Corrupt("partition or offset out of range");
    }
  }
  return {};
}

}  // namespace redpacket::ledger::codec
