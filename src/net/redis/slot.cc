// CRC16 hash slots and CLUSTER SLOTS parsing.
#include "net/redis/slot.h"

#include <array>
#include <limits>

namespace redpacket::net::redis {
namespace {

// Table-driven CRC16: one lookup per byte instead of eight shifts; built at compile time.
constexpr std::array<std::uint16_t, 256> MakeCrc16Table() {
  std::array<std::uint16_t, 256> table{};
  for (int byte = 0; byte < 256; ++byte) {
    std::uint16_t crc = static_cast<std::uint16_t>(byte << 8);
    for (int bit = 0; bit < 8; ++bit) {
      crc = static_cast<std::uint16_t>((crc & 0x8000) ? (crc << 1) ^ 0x1021 : crc << 1);
    }
    table[byte] = crc;
  }
  return table;
}

constexpr std::array<std::uint16_t, 256> kCrc16Table = MakeCrc16Table();

std::optional<Endpoint> ParseNode(const Reply& node, std::string_view queried_host) {
  if (!node.IsArray() || node.array().size() < 2) return std::nullopt;
  const Reply& host = node.array()[0];
  const Reply& port = node.array()[1];
  if (!host.IsString() || !port.IsInteger()) return std::nullopt;
  if (port.integer() <= 0 || port.integer() > std::numeric_limits<std::uint16_t>::max()) {
    return std::nullopt;
  }
  Endpoint endpoint{host.string(), static_cast<std::uint16_t>(port.integer())};
  if (endpoint.host.empty() || endpoint.host == "?") endpoint.host = std::string(queried_host);
  return endpoint;
}

}  // namespace

std::uint16_t Crc16(std::string_view data) {
  std::uint16_t crc = 0;
  for (const char c : data) {
    crc = static_cast<std::uint16_t>(
        (crc << 8) ^ kCrc16Table[((crc >> 8) ^ static_cast<unsigned char>(c)) & 0xFF]);
  }
  return crc;
}

std::string_view HashTag(std::string_view key) {
  const auto open = key.find('{');
  if (open == std::string_view::npos) return key;
  const auto close = key.find('}', open + 1);
  if (close == std::string_view::npos || close == open + 1) return key;
  return key.substr(open + 1, close - open - 1);
}

int KeySlot(std::string_view key) { return Crc16(HashTag(key)) & (kSlotCount - 1); }

std::optional<std::vector<SlotRange>> ParseClusterSlots(const Reply& reply,
                                                        std::string_view queried_host) {
  if (!reply.IsArray()) return std::nullopt;
  std::vector<SlotRange> ranges;
  ranges.reserve(reply.array().size());
  for (const Reply& entry : reply.array()) {
    if (!entry.IsArray() || entry.array().size() < 3) return std::nullopt;
    const Reply::Array& fields = entry.array();
    if (!fields[0].IsInteger() || !fields[1].IsInteger()) return std::nullopt;
    SlotRange range;
    range.first = static_cast<int>(fields[0].integer());
    range.last = static_cast<int>(fields[1].integer());
    if (range.first < 0 || range.last >= kSlotCount || range.first > range.last) {
      return std::nullopt;
    }
    auto master = ParseNode(fields[2], queried_host);
    if (!master) return std::nullopt;
    range.master = std::move(*master);
    for (std::size_t i = 3; i < fields.size(); ++i) {
      auto replica = ParseNode(fields[i], queried_host);
      if (!replica) return std::nullopt;
      range.replicas.push_back(std::move(*replica));
    }
    ranges.push_back(std::move(range));
  }
  return ranges;
}

}  // namespace redpacket::net::redis
