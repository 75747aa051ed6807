// Encodings every ledger shares, whatever its database: the shares blob, the history cursor, the
// fingerprint that binds a request_id to its request, the check that shares match their packet,
// and the bound on the money in the system. Pure functions; thread-safe.
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

// What a request_id is bound to: the same request_id with another fingerprint is answered 409
// idempotency_conflict. Stable across versions (it is stored).
std::string DepositFingerprint(Cents amount_cents);
std::string PacketFingerprint(const domain::PacketSpec& spec);

// The shares must be exactly what the packet promises, or money would appear or vanish:
// `count` shares, each >= 1 cent, summing to the total. kInternal otherwise.
domain::Status CheckShares(const domain::PacketSpec& spec, const std::vector<Cents>& shares);

// The bound on all the money there is: a deposit of `amount_cents` when every deposit so far
// sums to `deposited_cents` must keep the sum at most domain::kMaxTotalDepositsCents (so no
// balance, and no credit, can ever pass it). kBadRequest naming what is left otherwise.
domain::Status CheckDepositWithinTotal(Cents deposited_cents, Cents amount_cents);

}  // namespace redpacket::ledger::codec
