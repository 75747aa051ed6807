// The hot-path store: where packets' remaining shares live and grabs are decided. Interface only;
// store/memory is the embedded engine, store/redis the cluster one (docs/decisions.md §9).
// Calls never block on I/O; completions may run on another thread (the caller re-posts them).
#pragma once

#include <functional>
#include <optional>
#include <vector>

#include "domain/grab_rules.h"
#include "domain/packet.h"
#include "domain/records.h"
#include "domain/status.h"

namespace redpacket::store {

using domain::Cents;
using domain::PacketId;
using domain::TimePoint;
using domain::UserId;

struct GrabResult {
  domain::ErrorCode code = domain::ErrorCode::kOk;  // kOk, kConflict, kGone, kForbidden, kNotFound
  std::string message;
  Cents amount_cents = 0;  // kOk, and kConflict: what the first grab took
  std::int64_t seq = 0;
  std::int64_t remaining_count = 0;
  // True: this store does not hold the packet (never loaded here, evicted once finished, or its
  // keys expired or lost), so it decided nothing; the caller asks the ledger. code is kNotFound.
  bool not_held = false;

  static GrabResult NotHeld() {
    return {.code = domain::ErrorCode::kNotFound, .message = "no such packet", .not_held = true};
  }
  // No share, for this reason: why the store could not decide (kUnavailable, kInternal), or
  // that there is no such packet.
  static GrabResult Failed(domain::ErrorCode code, std::string message) {
    return {.code = code, .message = std::move(message)};
  }
  static GrabResult Failed(domain::Error error) {
    return Failed(error.code, std::move(error.message));
  }
  // No share: the refusal domain/grab_rules.h words for `decision` (not kTake).
  static GrabResult Refused(domain::GrabDecision decision) {
    return Failed(domain::GrabRefusal(decision));
  }
};

// What GET /v1/packets/{id} shows, taken under the packet's lock.
struct PacketSnapshot {
  domain::PacketRecord record;  // shares are left empty in snapshots
  Cents remaining_cents = 0;
  std::int64_t remaining_count = 0;
};

struct SweepStats {
  std::size_t closed = 0;   // open packets past their expiry, now expired
  std::size_t evicted = 0;  // finished packets dropped from memory (the ledger has them)
  // Registered for expiry, yet the store lost the packet's keys (cluster): it stays registered
  // and its refund waits until the packet is restored from the ledger.
  std::vector<PacketId> lost;
};

class PacketStore {
 public:
  using GrabCallback = std::function<void(GrabResult)>;
  using StatusCallback = std::function<void(domain::Status)>;
  using SnapshotCallback = std::function<void(std::optional<PacketSnapshot>)>;
  virtual ~PacketStore() = default;

  // Takes a packet the ledger has committed (creation or recovery). Idempotent by packet_id.
  // `done` runs once the packet can be grabbed (an error: it cannot, e.g. the store is down).
  virtual void Add(const domain::PacketRecord& packet, StatusCallback done) = 0;

  // Decides a grab. `done` runs once the outcome is durable (a 200 or a 409 is never sent for a
  // grab that a crash could still undo). A packet this store does not hold gives
  // GrabResult::NotHeld(): the caller then asks the ledger (it may be finished and evicted).
  virtual void Grab(PacketId packet_id, UserId user_id, TimePoint now, GrabCallback done) = 0;

  // nullopt when the store does not hold the packet.
  virtual void Snapshot(PacketId packet_id, SnapshotCallback done) = 0;

  // How many grabs the store holds for the packet (nullopt: it does not hold the packet; an
  // error: it cannot tell now). Cheap, unlike Snapshot: the reconciler asks it of every open
  // packet and reads a snapshot only when the ledger stays behind.
  using CountCallback = std::function<void(domain::Result<std::optional<std::int64_t>>)>;
  virtual void CountGrabs(PacketId packet_id, CountCallback done) = 0;

  // Closes every open packet whose expiry has passed and starts its refund; drops finished
  // packets whose every event the ledger has applied (position <= applied_position) and that
  // finished more than `retention` ago.
  virtual SweepStats Sweep(TimePoint now, std::uint64_t applied_position,
                           std::chrono::milliseconds retention) = 0;

  virtual std::size_t size() const = 0;

  // For /readyz: ok when the store can serve (an in-process store always can); otherwise the
  // error says what is unreachable. Never blocks; `done` may run on another thread.
  virtual void CheckHealth(StatusCallback done) { done({}); }

  // Never blocks: the ledger has this packet unfinished, and the store does not hold it (its
  // keys were lost). A store that restores lost packets queues it for the loader; an in-process
  // store never loses one (the default does nothing).
  virtual void ReportLost(PacketId packet_id) { (void)packet_id; }
};

}  // namespace redpacket::store
