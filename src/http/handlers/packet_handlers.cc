// POST /v1/packets, POST /v1/packets/{id}/grab (and --dev's GET /grab), GET /v1/packets/{id} and
// its live events.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <limits>

#include "http/codec/packet_json.h"
#include "http/codec/request_fields.h"
#include "http/events/packet_events.h"
#include "http/handlers/handlers.h"

namespace redpacket::http {
namespace {

// The hot path: the reply is formatted by hand, no JSON tree. `seed_format`: GET /grab's body.
void GrabAndReply(Call& call, const Reply& reply, domain::PacketId packet_id, bool seed_format) {
  const domain::UserId user_id = call.caller->user_id;
  call.service().Grab(
      packet_id, user_id,
      [reply, packet_id, user_id, seed_format, events = call.events()](store::GrabResult result) {
        Response response;
        if (result.code == domain::ErrorCode::kOk) {
          if (events != nullptr) events->Notify(packet_id);  // live streams of this packet
          response.body =
              seed_format
                  ? fmt::format(
                        R"({{"message":"Red packet grabbed successfully","amount":{}.{:02},"amount_cents":{}}})",
                        result.amount_cents / 100, result.amount_cents % 100, result.amount_cents)
                  : fmt::format(
                        R"({{"packet_id":"{}","user_id":{},"amount_cents":{},"seq":{},"remaining_count":{}}})",
                        packet_id, user_id, result.amount_cents, result.seq,
                        result.remaining_count);
        } else if (result.code == domain::ErrorCode::kConflict) {
          response.status = 409;
          response.body = fmt::format(
              R"({{"error":"conflict","message":"{}","packet_id":"{}","amount_cents":{},"seq":{}}})",
              result.message, packet_id, result.amount_cents, result.seq);
        } else {
          response = ErrorResponse(result.code, result.message);
          // A grab's 503 is always worth retrying (repeating a grab never takes a second share).
          if (result.code == domain::ErrorCode::kUnavailable) response.retry_after_s = 1;
        }
        reply(std::move(response));
      });
}

}  // namespace

void HandleCreatePacket(Call& call) {
  const Reply reply = MakeReply(call);
  auto fields = ParseCreatePacket(call.request.body, call.service().limits());
  if (!fields) return reply.Error(fields.error());
  fields->spec.sender_id = call.caller->user_id;
  call.service().CreatePacket(
      std::move(fields->spec), fields->request_id,
      [reply](domain::Result<domain::PacketRecord> packet) {
        if (!packet) return reply.Error(packet.error());
        spdlog::info(
            "packet created packet_id={} sender_id={} total_cents={} count={} request_id={}",
            packet->packet_id, packet->spec.sender_id, packet->spec.total_cents, packet->spec.count,
            reply.request_id);
        reply.Json(201, PacketJson(*packet));
      });
}

void HandleGrab(Call& call) {
  const Reply reply = MakeReply(call);
  auto packet_id = PathId(call, 0, kMaxPacketId, "packet id", reply);
  if (!packet_id) return;
  GrabAndReply(call, reply, *packet_id, false);
}

void HandleSeedGrab(Call& call) {
  const Reply reply = MakeReply(call);
  auto query = ParseSeedGrabQuery(call.request.query());
  if (!query) return reply.Error(query.error());
  call.caller = Caller{query->user_id, false};
  GrabAndReply(call, reply, query->packet_id, true);
}

void HandlePacket(Call& call) {
  const Reply reply = MakeReply(call);
  auto packet_id = PathId(call, 0, kMaxPacketId, "packet id", reply);
  if (!packet_id) return;
  call.service().GetPacket(*packet_id, [reply](domain::Result<store::PacketSnapshot> snapshot) {
    if (!snapshot) return reply.Error(snapshot.error());
    reply.Json(200, PacketDetailsJson(*snapshot));
  });
}

// GET /v1/packets/{id}/events: the access of GET /v1/packets/{id} (any caller, the packet must
// exist), then the stream (packet_events.h). Last-Event-ID: the last seq the client has.
void HandlePacketEvents(Call& call) {
  const Reply reply = MakeReply(call);
  auto packet_id = PathId(call, 0, kMaxPacketId, "packet id", reply);
  if (!packet_id) return;
  std::int64_t after_seq = 0;
  const std::string& last = call.request.last_event_id;
  if (!last.empty() && last != "0" &&
      !ParsePositive(last, std::numeric_limits<std::int64_t>::max(), &after_seq)) {
    return reply.Error(domain::ErrorCode::kBadRequest,
                       "Last-Event-ID must be a grab's seq (a non-negative integer)");
  }
  PacketEvents* events = call.events();
  if (events == nullptr) {
    return reply.Error(domain::ErrorCode::kUnavailable, "event streams are off on this server");
  }
  events->Open(*packet_id, after_seq, [reply](Response response) { reply(std::move(response)); });
}

}  // namespace redpacket::http
