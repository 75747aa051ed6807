// The wire form of a ledger event on the Kafka bus (docs/API.md, "Events"): one JSON object a
// message, "type" first, packet_id as a string, "at" in RFC 3339. Pure functions; thread-safe.
#pragma once

#include <string>
#include <string_view>

#include "domain/packet.h"
#include "domain/status.h"

namespace redpacket::bus::codec {

// {"type":"grab","event_id":"g-1-7","packet_id":"1","user_id":7,"amount_cents":567,"seq":3,
//  "at":"2026-11-25T17:29:06.123Z"}; a refund has no "seq".
std::string EncodeEvent(const domain::LedgerEvent& event);

// Strict: kBadRequest naming the first problem for anything that is not exactly an event of the
// contract (not JSON, not an object, a field missing or of the wrong type, an id out of range, a
// negative amount, a grab of less than 1 cent or with seq < 1, a refund with a seq, a time that
// is not RFC 3339, an event_id that does not match the event). Unknown fields are ignored, so a
// producer may add one before every consumer knows it.
domain::Result<domain::LedgerEvent> DecodeEvent(std::string_view json);

}  // namespace redpacket::bus::codec
