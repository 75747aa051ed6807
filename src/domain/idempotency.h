// The idempotency protocol of the ledger's writes (deposits, packet creation), written once for
// every ledger; each ledger only stores and reads the rows. Pure; thread-safe.
//
// A write may name a request_id: 1 to 64 characters of UTF-8, as the API says (empty: none).
// The first call with a key (user, request_id, kind) does its work and, in the same transaction,
// stores its answer with the request's fingerprint. A later call with the same key:
//  - the same fingerprint is a repeat: it gets the first call's answer and writes nothing;
//  - another fingerprint is kIdempotencyConflict and writes nothing.
// A stored fingerprint that is empty (rows of the SQLite ledger's schema v1, written before a
// request_id was bound to its request) matches no request: the ledger cannot tell a repeat from
// another request, so it refuses (409, nothing moves) rather than answer for a request it never
// saw. A request_id is retried within moments of its first use, long after v1.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "domain/packet.h"
#include "domain/records.h"
#include "domain/status.h"
#include "domain/types.h"

namespace redpacket::domain {

inline constexpr std::size_t kMaxRequestIdCharacters = 64;

// Empty (no request_id), or 1..kMaxRequestIdCharacters characters (Unicode code points) of valid
// UTF-8. kBadRequest otherwise.
Status CheckRequestId(std::string_view request_id);

// What a request_id is bound to. Stable across versions (it is stored); never empty.
std::string DepositFingerprint(Cents amount_cents);
std::string PacketFingerprint(const PacketSpec& spec);

// A write that names a request_id: the key it is stored under and what it is bound to. Views
// the caller's request_id: a value for the length of one call.
struct IdempotentRequest {
  UserId user_id = 0;           // the depositor; the sender of a packet
  std::string_view kind;        // "deposit" or "create_packet", as stored: never changes
  std::string_view request_id;  // not empty
  std::string fingerprint;

  static IdempotentRequest Deposit(UserId user_id, std::string_view request_id, Cents amount_cents);
  static IdempotentRequest CreatePacket(const PacketSpec& spec, std::string_view request_id);
};

// What every ledger checks before it writes, and the request the write is then bound to (used
// only when request_id is not empty): a deposit's rules (deposit_rules.h) or a packet's shares
// (CheckShares), then CheckRequestId. The first failure (kBadRequest; kInternal for shares that do
// not fit their packet: the server split them), otherwise the request.
Result<IdempotentRequest> CheckedDeposit(UserId user_id, Cents amount_cents,
                                         std::string_view request_id);
Result<IdempotentRequest> CheckedCreatePacket(const PacketSpec& spec,
                                              const std::vector<Cents>& shares,
                                              std::string_view request_id);

// What the first call with the same key stored.
struct StoredAnswer {
  std::string result;  // decimal: a deposit's new balance, a created packet's id
  std::string fingerprint;
};

// The protocol's decision for `request`, given what its key holds (nullopt: nothing):
//  - nullopt: no earlier call. Do the write, and store its answer with request.fingerprint;
//  - a value: a repeat. Answer with it (DepositWrite: the balance; CreatePacket: see
//    RepeatedCreate), write nothing;
//  - kIdempotencyConflict: the key is bound to another request;
//  - kInternal: the stored result is no integer (corrupt data).
Result<std::optional<std::int64_t>> EarlierAnswer(const IdempotentRequest& request,
                                                  const std::optional<StoredAnswer>& stored);

// A repeated create's answer: the first packet (`first`, as read by its id `packet_id`), marked
// repeated: nothing was debited now, and the caller must not load it again. kInternal when the
// packet the key names is missing.
Result<PacketRecord> RepeatedCreate(PacketId packet_id, Result<std::optional<PacketRecord>> first);

}  // namespace redpacket::domain
