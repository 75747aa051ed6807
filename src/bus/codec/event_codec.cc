// Encoding and strict decoding of the bus's event JSON (see event_codec.h).
#include "bus/codec/event_codec.h"

#include <charconv>
#include <cstdint>
#include <limits>

#include <boost/json.hpp>
#include <fmt/format.h>

namespace redpacket::bus::codec {
namespace {

namespace json = boost::json;
using domain::ErrorCode;
using domain::LedgerEvent;

domain::Error Malformed(std::string message) {
  return domain::MakeError(ErrorCode::kBadRequest, "malformed event: " + std::move(message));
}

// The integer field `name` in [min, max]; a float (even 5.0) is not an integer.
domain::Result<std::int64_t> IntegerField(const json::object& object, std::string_view name,
                                          std::int64_t min, std::int64_t max) {
  const json::value* value = object.if_contains(name);
  if (value == nullptr) return Malformed(fmt::format("\"{}\" is missing", name));
  std::int64_t number = 0;
  if (value->is_int64()) {
    number = value->get_int64();
  } else if (value->is_uint64()) {
    // Only above INT64_MAX does Boost.JSON choose uint64: out of every range here.
    return Malformed(fmt::format("\"{}\" is out of range", name));
  } else {
    return Malformed(fmt::format("\"{}\" must be an integer", name));
  }
  if (number < min || number > max) {
    return Malformed(fmt::format("\"{}\" is {}, out of range [{}, {}]", name, number, min, max));
  }
  return number;
}

domain::Result<std::string_view> StringField(const json::object& object, std::string_view name) {
  const json::value* value = object.if_contains(name);
  if (value == nullptr) return Malformed(fmt::format("\"{}\" is missing", name));
  if (!value->is_string()) return Malformed(fmt::format("\"{}\" must be a string", name));
  const json::string& text = value->get_string();
  return std::string_view(text.data(), text.size());
}

// A packet id is a positive 63-bit integer written in decimal, without sign or leading zeros.
domain::Result<domain::PacketId> ParsePacketId(std::string_view text) {
  domain::PacketId id = 0;
  const char* end = text.data() + text.size();
  auto [stop, error] = std::from_chars(text.data(), end, id);
  if (text.empty() || text[0] == '0' || text[0] == '-' || error != std::errc() || stop != end ||
      id < 1) {
    return Malformed(fmt::format("\"packet_id\" must be a positive decimal integer below 2^63, "
                                 "not \"{}\"",
                                 text));
  }
  return id;
}

}  // namespace

std::string EncodeEvent(const LedgerEvent& event) {
  const bool grab = event.type == LedgerEvent::Type::kGrab;
  // Boost.JSON keeps insertion order, so "type" is written first.
  json::object object;
  object["type"] = grab ? "grab" : "refund";
  object["event_id"] = event.EventId();
  object["packet_id"] = std::to_string(event.packet_id);
  object["user_id"] = event.user_id;
  object["amount_cents"] = event.amount_cents;
  if (grab) object["seq"] = event.seq;
  object["at"] = domain::FormatTime(domain::FromUnixMillis(event.at_millis));
  return json::serialize(object);
}

domain::Result<LedgerEvent> DecodeEvent(std::string_view text) {
  boost::system::error_code parse_error;
  json::value parsed = json::parse(text, parse_error);
  if (parse_error) return Malformed("not JSON: " + parse_error.message());
  if (!parsed.is_object()) return Malformed("not a JSON object");
  const json::object& object = parsed.get_object();

  auto type = StringField(object, "type");
  if (!type.ok()) return type.error();
  if (*type != "grab" && *type != "refund") {
    return Malformed(fmt::format("\"type\" must be \"grab\" or \"refund\", not \"{}\"", *type));
  }
  const bool grab = *type == "grab";

  auto packet_id_text = StringField(object, "packet_id");
  if (!packet_id_text.ok()) return packet_id_text.error();
  auto packet_id = ParsePacketId(*packet_id_text);
  if (!packet_id.ok()) return packet_id.error();

  auto user_id = IntegerField(object, "user_id", 1, domain::kMaxUserId);
  if (!user_id.ok()) return user_id.error();

  // Every share is at least 1 cent; a refund of 0 is what remains of a packet grabbed in full.
  auto amount = IntegerField(object, "amount_cents", grab ? 1 : 0,
                             std::numeric_limits<std::int64_t>::max());
  if (!amount.ok()) return amount.error();

  std::int64_t seq = 0;
  if (grab) {
    auto seq_field = IntegerField(object, "seq", 1, std::numeric_limits<std::int64_t>::max());
    if (!seq_field.ok()) return seq_field.error();
    seq = *seq_field;
  } else if (object.contains("seq")) {
    return Malformed("a refund has no \"seq\"");
  }

  auto at = StringField(object, "at");
  if (!at.ok()) return at.error();
  auto time = domain::ParseTime(*at);
  if (!time) return Malformed(fmt::format("\"at\" is not an RFC 3339 time: \"{}\"", *at));
  const std::int64_t at_millis = domain::ToUnixMillis(*time);
  const LedgerEvent event = grab ? LedgerEvent::Grab(*packet_id, *user_id, *amount, seq, at_millis)
                                 : LedgerEvent::Refund(*packet_id, *user_id, *amount, at_millis);

  auto event_id = StringField(object, "event_id");
  if (!event_id.ok()) return event_id.error();
  if (*event_id != event.EventId()) {
    return Malformed(fmt::format("\"event_id\" is \"{}\" but the event's id is \"{}\"", *event_id,
                                 event.EventId()));
  }
  return event;
}

}  // namespace redpacket::bus::codec
