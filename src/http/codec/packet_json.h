// The JSON of a packet as GET /v1/packets/{id} shows it, shared by that handler and the packet's
// event stream (whose grab events carry the same grab objects). Pure functions; thread-safe.
#pragma once

#include <boost/json/object.hpp>

#include "domain/records.h"
#include "store/store.h"

namespace redpacket::http {

// {"packet_id","sender_id","kind","total_cents","count","greeting","receiver_id","created_at","expires_at"}
boost::json::object PacketJson(const domain::PacketRecord& packet);
// {"user_id","amount_cents","seq","grabbed_at"}
boost::json::object GrabJson(const domain::Grab& grab);
// The details: PacketJson plus remaining, status, refund, grabs and best luck.
boost::json::object PacketDetailsJson(const store::PacketSnapshot& snapshot);

}  // namespace redpacket::http
