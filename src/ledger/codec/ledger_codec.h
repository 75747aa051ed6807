// Encodings every SQL ledger shares, whatever its database: the shares blob, the history cursor,
// the range of stored offsets. (The money rules they enforce live in domain/.) Pure functions;
// thread-safe.
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "domain/packet.h"
#include "domain/status.h"

namespace redpacket::ledger::codec {

using domain::Cents;

// Shares as one little-endian int64 blob: a million-share packet is one row write.
std::vector<std::byte> EncodeShares(const std::vector<Cents>& shares);
// kInternal when the blob does not hold exactly `count` shares.
domain::Result<std::vector<Cents>> DecodeShares(std::span<const std::byte> blob,
                                                domain::PacketId packet_id, std::int64_t count);

// A history cursor is the decimal id of the last item of the previous page. Empty: the first
// page (INT64_MAX). Anything but a positive decimal integer is a 400.
domain::Result<std::int64_t> ParseCursor(std::string_view cursor);

// "Should never happen": the stored data contradicts an invariant (kInternal).
domain::Error Corrupt(std::string message);

// Every partition and offset of `applied` fits the ledger's BIGINT columns. kInternal otherwise.
domain::Status CheckOffsets(const domain::PartitionOffsets& applied);

}  // namespace redpacket::ledger::codec
