// Key names of the cluster hot path. Every key of a packet carries the hash tag {<prefix>:<id>}
// so one Lua script can touch them all (they live in one slot, on one master). Pure values.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "domain/types.h"

namespace redpacket::store::redis {

struct PacketKeys {
  std::string meta;    // hash: sender, total, count, kind, greeting, receiver, created_ms, ...
  std::string shares;  // list of the shares not handed out yet, in seq order
  std::string grabs;   // hash: user -> "amount:seq:at_ms:request_token"
};

class KeySpace {
 public:
  // `prefix` ("rp" in production; tests use their own) must be non-empty and must not contain
  // '{' or '}' (it is part of a hash tag); throws std::invalid_argument otherwise.
  explicit KeySpace(std::string prefix = "rp");

  // {rp:<id>}:meta, {rp:<id>}:shares, {rp:<id>}:grabs.
  PacketKeys ForPacket(domain::PacketId packet_id) const;
  // {rp:bloom}: the Bloom filter bitmap. A single key, so one slot on one master: every Add and
  // every cold lookup goes to that node (cheap single commands; documented in redis_store.h).
  const std::string& bloom() const { return bloom_; }
  // {rp:bloom}:params: the filter's size, checked at start so a changed configuration cannot
  // silently reinterpret the bitmap (that would turn existing packets into false 404s).
  const std::string& bloom_parameters() const { return bloom_parameters_; }
  // {rp:expiry}: sorted set, score = expires_ms, member = packet id; what the sweeper scans.
  const std::string& expiry() const { return expiry_; }
  // The highest sweeper fencing token seen, in the slot of expiry() (a fenced sweep checks both).
  const std::string& expiry_fence() const { return expiry_fence_; }
  // {rp:lost}: set of packet ids whose keys a server found missing while the ledger has them
  // unfinished; the loader takes them from here.
  const std::string& lost() const { return lost_; }
  const std::string& prefix() const { return prefix_; }

  // The slot every key of a packet lives in.
  int SlotOf(domain::PacketId packet_id) const;
  // The outbox of a slot: a stream {<prefix>:o<n>}:outbox, where n is the first number whose tag
  // hashes to that slot, so a packet's scripts can append to it (a script may touch several keys
  // only when they share a slot, whatever their tags). Every packet of the slot records its
  // events there: the relay finds what is pending by reading 16384 streams, never every packet.
  const std::string& OutboxOf(int slot) const { return outboxes_[static_cast<std::size_t>(slot)]; }
  // Beside it, the count of recovery claims (outbox_claim.lua writes it).
  std::string ClaimsOf(int slot) const { return OutboxOf(slot) + "-claims"; }

 private:
  std::string prefix_;
  std::string bloom_;
  std::string bloom_parameters_;
  std::string expiry_;
  std::string expiry_fence_;
  std::string lost_;
  std::vector<std::string> outboxes_;  // by slot
};

}  // namespace redpacket::store::redis
