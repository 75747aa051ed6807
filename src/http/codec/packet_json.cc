// Packet and grab JSON of docs/API.md (GET /v1/packets/{id}, the event stream).
#include "http/codec/packet_json.h"

#include <string>

namespace redpacket::http {

namespace json = boost::json;

json::object PacketJson(const domain::PacketRecord& packet) {
  return {{"packet_id", std::to_string(packet.packet_id)},
          {"sender_id", packet.spec.sender_id},
          {"kind", domain::ToString(packet.spec.kind)},
          {"total_cents", packet.spec.total_cents},
          {"count", packet.spec.count},
          {"greeting", packet.spec.greeting},
          {"receiver_id",
           packet.spec.receiver_id ? json::value(*packet.spec.receiver_id) : json::value(nullptr)},
          {"created_at", domain::FormatTime(packet.created_at)},
          {"expires_at", domain::FormatTime(packet.expires_at)}};
}

json::object GrabJson(const domain::Grab& grab) {
  return {{"user_id", grab.user_id},
          {"amount_cents", grab.amount_cents},
          {"seq", grab.seq},
          {"grabbed_at", domain::FormatTime(grab.grabbed_at)}};
}

json::object PacketDetailsJson(const store::PacketSnapshot& snapshot) {
  const domain::PacketRecord& packet = snapshot.record;
  json::object out = PacketJson(packet);
  out["remaining_cents"] = snapshot.remaining_cents;
  out["remaining_count"] = snapshot.remaining_count;
  out["status"] = domain::ToString(packet.status);
  out["refund_cents"] =
      packet.refund_cents ? json::value(*packet.refund_cents) : json::value(nullptr);
  json::array grabs;
  const domain::Grab* best = nullptr;
  for (const auto& grab : packet.grabs) {
    grabs.push_back(GrabJson(grab));
    // Best luck: the largest amount, ties to the earliest grab (grabs are in seq order).
    if (best == nullptr || grab.amount_cents > best->amount_cents) best = &grab;
  }
  out["grabs"] = std::move(grabs);
  const bool exhausted = snapshot.remaining_count == 0;
  out["best_luck_user_id"] =
      exhausted && best != nullptr ? json::value(best->user_id) : json::value(nullptr);
  return out;
}

}  // namespace redpacket::http
