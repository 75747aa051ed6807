// Credits that are durable on the bus but not applied to the ledger yet, per user: the
// balance's pending_cents in embedded mode (a cluster server cannot know them locally).
// The journal's durable listener adds; the worker removes what it committed. A balance read
// takes the ledger's balance and applied position from one snapshot and asks for the credits
// beyond that position, so it never waits for the applier's transaction, and it counts every
// event exactly once whether the applier committed before, during or after the read.
// Thread-safe; every call holds one short mutex.
#pragma once

#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <span>
#include <unordered_map>
#include <vector>

#include "domain/types.h"

namespace redpacket::service {

struct PendingEvent {
  std::uint64_t position = 0;  // on the bus (the journal), increasing
  domain::UserId user_id = 0;
  domain::Cents amount_cents = 0;
};

class PendingCredits {
 public:
  // Before any Add: the ledger has applied everything up to `applied_position`.
  void Reset(std::uint64_t applied_position);
  // Durable events, in position order, all beyond what Remove was given so far.
  void Add(std::span<const PendingEvent> events);
  // The ledger has committed every event up to `applied_position`.
  void Remove(std::uint64_t applied_position);
  // What `user_id` has pending beyond a ledger snapshot that applied up to `snapshot_position`.
  // nullopt: the snapshot is older than what this still remembers (the applier committed twice
  // during the read); read a newer snapshot.
  std::optional<domain::Cents> Beyond(domain::UserId user_id, std::uint64_t snapshot_position) const;

 private:
  mutable std::mutex mutex_;
  std::unordered_map<domain::UserId, domain::Cents> cents_;  // events after applied_
  std::deque<PendingEvent> unapplied_;                       // the same events, in order
  std::uint64_t applied_ = 0;
  // The last batch removed, kept for a read whose snapshot predates its commit.
  std::vector<PendingEvent> removed_;
  std::uint64_t removed_after_ = 0;  // removed_ holds the events in (removed_after_, applied_]
};

}  // namespace redpacket::service
