// Redis Cluster key distribution: CRC16 hash slots with the {hashtag} rule, and the slot map
// read from a CLUSTER SLOTS reply. Pure functions: no I/O, safe from any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "net/redis/endpoint.h"
#include "net/redis/reply.h"

namespace redpacket::net::redis {

inline constexpr int kSlotCount = 16384;

// CRC16-CCITT (XMODEM: polynomial 0x1021, initial value 0), the checksum of the cluster spec.
std::uint16_t Crc16(std::string_view data);

// The part of a key that is hashed: the text between the first '{' and the next '}' when it is
// not empty, otherwise the whole key.
std::string_view HashTag(std::string_view key);

// CRC16(HashTag(key)) mod 16384.
int KeySlot(std::string_view key);

struct SlotRange {
  int first = 0;  // inclusive
  int last = 0;   // inclusive
  Endpoint master;
  std::vector<Endpoint> replicas;
};

// Parses a CLUSTER SLOTS reply: [[first, last, [host, port, id...], [replica...]...]...].
// A node listed with an empty host or "?" is on `queried_host` (the node that answered).
// nullopt when the reply does not have that shape.
std::optional<std::vector<SlotRange>> ParseClusterSlots(const Reply& reply,
                                                        std::string_view queried_host);

}  // namespace redpacket::net::redis
