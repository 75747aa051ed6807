// The packet shape cache and the per-packet deltas of a batch of events.
#include "ledger/codec/event_batch.h"

#include <utility>

namespace redpacket::ledger::codec {

const domain::PacketShape* PacketShapeCache::Find(domain::PacketId packet_id) const {
  auto found = shapes_.find(packet_id);
  return found == shapes_.end() ? nullptr : &found->second;
}

const domain::PacketShape& PacketShapeCache::Insert(domain::PacketId packet_id,
                                                    domain::PacketShape shape) {
  if (shares_ + shape.shares.size() > kMaxShares) Clear();
  shares_ += shape.shares.size();
  auto [it, inserted] = shapes_.insert_or_assign(packet_id, std::move(shape));
  return it->second;
}

void PacketShapeCache::Clear() {
  shapes_.clear();
  shares_ = 0;
}

void PacketDeltas::Add(const domain::LedgerEvent& event) {
  PacketDelta& delta = deltas_[event.packet_id];
  if (event.type == domain::LedgerEvent::Type::kGrab) {
    delta.grabs += 1;
    delta.grabbed_cents += event.amount_cents;
  } else {
    delta.refund_cents = event.amount_cents;
  }
}

}  // namespace redpacket::ledger::codec
