// What every SQL ledger's ApplyEvents keeps besides its SQL: the shapes of packets (what
// domain::CheckEvent needs), cached across batches, and what one batch changes per packet,
// summed so that a hot packet gets one UPDATE per batch instead of one per event.
// Not thread-safe: owned by one ledger connection.
#pragma once

#include <cstddef>
#include <map>
#include <optional>
#include <unordered_map>

#include "domain/event_rules.h"
#include "domain/packet.h"

namespace redpacket::ledger::codec {

// Shapes never change after creation and packet ids are never reused: the cache cannot go
// stale. It is bounded by the shares it holds (8 bytes each); past the bound it starts again.
class PacketShapeCache {
 public:
  static constexpr std::size_t kMaxShares = std::size_t{4} << 20;  // 32 MB

  // nullptr when not cached.
  const domain::PacketShape* Find(domain::PacketId packet_id) const;
  bool Contains(domain::PacketId packet_id) const { return shapes_.contains(packet_id); }
  // Caches (or replaces) the shape; may drop every other shape to stay within kMaxShares.
  const domain::PacketShape& Insert(domain::PacketId packet_id, domain::PacketShape shape);
  void Clear();

 private:
  std::unordered_map<domain::PacketId, domain::PacketShape> shapes_;
  std::size_t shares_ = 0;
};

// What the events of one batch that were applied now (not repeats) change in a packet's row.
struct PacketDelta {
  std::int64_t grabs = 0;
  domain::Cents grabbed_cents = 0;
  std::optional<domain::Cents> refund_cents;
};

// The deltas of one batch, by packet id (in id order: concurrent batches update alike).
class PacketDeltas {
 public:
  // Counts an event applied now.
  void Add(const domain::LedgerEvent& event);
  const std::map<domain::PacketId, PacketDelta>& by_packet() const { return deltas_; }

 private:
  std::map<domain::PacketId, PacketDelta> deltas_;
};

}  // namespace redpacket::ledger::codec
