// Reply and the shared path checks of the handlers.
#include "http/handlers/call.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <boost/json/serialize.hpp>

#include "http/codec/request_fields.h"

namespace redpacket::http {

void Reply::operator()(Response response) const {
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  metrics->ObserveRequest(route, response.status, seconds);
  if (response.status >= 500) {
    spdlog::warn("request failed status={} request_id={} body={}", response.status, request_id,
                 response.body);
  }
  respond(std::move(response));
}

void Reply::Error(const domain::Error& error) const { (*this)(ErrorResponse(error)); }

void Reply::Error(domain::ErrorCode code, std::string_view message) const {
  (*this)(ErrorResponse(code, message));
}

void Reply::Json(int status, const boost::json::value& value) const {
  Response response;
  response.status = status;
  response.body = boost::json::serialize(value);
  (*this)(std::move(response));
}

Reply MakeReply(const Call& call) {
  return Reply{&call.metrics(), call.route, call.respond, call.started,
               call.request.request_id_header};
}

std::optional<std::int64_t> PathId(const Call& call, std::size_t index, std::int64_t max,
                                   std::string_view what, const Reply& reply) {
  std::int64_t id = 0;
  if (!ParsePositive(call.params[index], max, &id)) {
    reply.Error(domain::ErrorCode::kBadRequest, fmt::format("{} must be a positive integer", what));
    return std::nullopt;
  }
  return id;
}

std::optional<domain::UserId> ReadableAccount(const Call& call, const Reply& reply) {
  auto user_id = PathId(call, 0, domain::kMaxUserId, "user id", reply);
  if (!user_id) return std::nullopt;
  if (call.caller && (call.caller->user_id == *user_id || call.caller->admin)) return user_id;
  reply.Error(domain::ErrorCode::kForbidden, "only the account's owner may read it");
  return std::nullopt;
}

}  // namespace redpacket::http
