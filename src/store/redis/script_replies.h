// What the Lua scripts of src/store/redis/lua answer, decoded into C++ values, and how a grab's
// answer maps onto the store's GrabResult. Pure functions: no I/O, safe from any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "domain/status.h"
#include "domain/types.h"
#include "net/redis/reply.h"
#include "store/outbox.h"
#include "store/store.h"

namespace redpacket::store::redis {

// The immutable part of a packet's meta hash: what the per-thread cache keeps.
struct PacketMeta {
  domain::UserId sender_id = 0;
  domain::Cents total_cents = 0;
  std::int64_t count = 0;
  domain::PacketKind kind = domain::PacketKind::kLucky;
  std::optional<domain::UserId> receiver_id;
  std::int64_t created_ms = 0;
  std::int64_t expires_ms = 0;
  std::string greeting;
};

// grab.lua: {code, amount, seq, remaining, same_request, at_ms, meta, outbox_entry_id}.
struct GrabReply {
  enum class Outcome { kOk, kConflict, kGoneExpired, kGoneEmpty, kForbidden, kUnknown, kLoading };
  Outcome outcome = Outcome::kUnknown;
  domain::Cents amount_cents = 0;  // kOk, kConflict (the first grab's)
  std::int64_t seq = 0;            // kOk, kConflict
  std::int64_t remaining_count = 0;
  bool same_request = false;       // kConflict: the first grab carried this request's token
  std::int64_t at_ms = 0;          // kOk, kConflict: when the grab was made
  std::optional<PacketMeta> meta;  // when asked for (want_meta) and the packet exists
  std::string outbox_id;           // kOk: the grab's event in the slot's outbox (a stream id)
};
std::optional<GrabReply> ParseGrabReply(const net::redis::Reply& reply);  // nullopt: malformed

// The store's answer for a decoded grab. kOk, and kConflict with same_request (a retry of a grab
// that did run), both become kOk with the grab's amount and seq; kUnknown is
// GrabResult::NotHeld() (the caller then asks the ledger: the keys may have expired), kLoading is
// kUnavailable.
GrabResult ToGrabResult(const GrabReply& reply);

// create.lua / append.lua: {'created'|'exists'|'loaded'|'missing', status, shares, grabs}.
// status: reserved (reserve.lua), loading, open, exhausted, expired, refunded.
struct LoadReply {
  enum class Outcome { kCreated, kExists, kLoaded, kMissing };
  Outcome outcome = Outcome::kMissing;
  std::string status;  // loading, open, exhausted, expired, refunded
  std::int64_t shares_loaded = 0;
  std::int64_t grabs_loaded = 0;
};
std::optional<LoadReply> ParseLoadReply(const net::redis::Reply& reply);

// close.lua: {code, refund, sender, status, closed_ms, outbox_entry_id}.
struct CloseReply {
  enum class Outcome { kClosed, kAlready, kOpen, kExhausted, kLoading, kUnknown };
  Outcome outcome = Outcome::kUnknown;
  domain::Cents refund_cents = 0;  // kClosed, kAlready
  domain::UserId sender_id = 0;
  std::string status;          // refunded after a close
  std::int64_t closed_ms = 0;  // kClosed, kAlready: the `now` of the close that did it
  std::string outbox_id;       // kClosed with a refund > 0: the refund's event in the outbox
};
std::optional<CloseReply> ParseCloseReply(const net::redis::Reply& reply);

// The entries of an outbox stream as XRANGE (or outbox_claim.lua) answers them:
// {{id, {t, g|r, p, <packet>, u, <user>, a, <amount>, s, <seq>, at, <ms>}}, ...}. An error: an
// entry without those fields (it is then left where it is, never published nor removed).
domain::Result<std::vector<OutboxEntry>> ParseOutboxEntries(const net::redis::Reply& reply,
                                                            int slot);

// snapshot.lua: {meta pairs, grab pairs, shares left}. nullopt inside: the packet is not there
// (or still loading); an error: the reply does not have that shape. `now` decides whether an
// open packet is past its expiry (shown as expired before the sweeper gets to it).
domain::Result<std::optional<PacketSnapshot>> ParseSnapshotReply(const net::redis::Reply& reply,
                                                                 domain::PacketId packet_id,
                                                                 domain::TimePoint now);

}  // namespace redpacket::store::redis
