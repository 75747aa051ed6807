// Decoding of what a client sends beyond the request line: the JSON bodies of the POST endpoints,
// the query strings of the GET endpoints, and the positive integers of paths and headers, into
// typed values or a 400 naming the first problem (docs/API.md). Pure functions, no I/O;
// thread-safe. Fuzzed by fuzz/request_fields_fuzz.cc.
#pragma once

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>

#include "domain/packet.h"
#include "domain/records.h"
#include "domain/status.h"
#include "domain/types.h"

namespace redpacket::http {

// Ids above this are typos or probes (path ids, X-User-Id; deposits above 10 billion CNY).
inline constexpr std::int64_t kMaxPacketId = std::numeric_limits<std::int64_t>::max();
inline constexpr domain::Cents kMaxDepositCents = 1'000'000'000'000;

// Decimal digits only (no sign, no spaces), 1 to 19 of them, in [1, max].
bool ParsePositive(std::string_view text, std::int64_t max, std::int64_t* value);

// POST /v1/users: {"name": 1-64 bytes}.
struct CreateUserFields {
  std::string name;
};
domain::Result<CreateUserFields> ParseCreateUser(std::string_view body);

// POST /v1/users/{id}/deposit: {"amount_cents": [1, kMaxDepositCents], "request_id"?: 1-64 bytes}.
struct DepositFields {
  domain::Cents amount_cents = 0;
  std::string request_id;  // empty: none given
};
domain::Result<DepositFields> ParseDeposit(std::string_view body);

// POST /v1/packets: total_cents and count (>= 1; the service checks them against the limits),
// kind ("lucky" when absent), greeting (at most limits.max_greeting_bytes), expires_in_s (any
// integer; limits.max_expires_in_s when absent), receiver_id ([1, kMaxUserId] or absent/null),
// request_id. spec.sender_id is left 0: the caller fills it in.
struct CreatePacketFields {
  domain::PacketSpec spec;
  std::string request_id;  // empty: none given
};
domain::Result<CreatePacketFields> ParseCreatePacket(std::string_view body,
                                                     const domain::Limits& limits);

// GET /v1/users/{id}/history?kind=sent|received&limit=1..100&cursor=...; unknown keys ignored.
struct HistoryQuery {
  domain::HistoryKind kind = domain::HistoryKind::kReceived;
  std::int64_t limit = 50;
  std::string cursor;  // as sent: still percent-encoded, as the ledger handed it out
};
domain::Result<HistoryQuery> ParseHistoryQuery(std::string_view query);

// GET /grab?user_id=..&red_packet_id=.. (--dev, the seed-compatible endpoint).
struct SeedGrabQuery {
  domain::UserId user_id = 0;
  domain::PacketId packet_id = 0;
};
domain::Result<SeedGrabQuery> ParseSeedGrabQuery(std::string_view query);

}  // namespace redpacket::http
