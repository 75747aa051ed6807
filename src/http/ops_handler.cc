// OpsHandler: /healthz, /readyz, /metrics.
#include "http/ops_handler.h"

#include <boost/json.hpp>

#include "http/response.h"

namespace redpacket::http {

void OpsHandler::Handle(Request request, Responder respond) {
  const std::string_view path = request.path();
  const bool known = path == "/healthz" || path == "/readyz" || path == "/metrics";
  if (!known) return respond(ErrorResponse(domain::ErrorCode::kNotFound, "no such route"));
  if (request.method != boost::beast::http::verb::get) {
    Response response = ErrorResponse(domain::ErrorCode::kMethodNotAllowed,
                                      "method not allowed on this path; allowed: GET");
    response.allow = "GET";
    return respond(std::move(response));
  }
  Response response;
  if (path == "/healthz") {
    response.body = R"({"status":"ok"})";
  } else if (path == "/readyz") {
    boost::json::object checks;
    bool ready = true;
    for (const auto& [name, state] : ready_()) {
      checks[name] = state;
      ready = ready && state == "ok";
    }
    response.status = ready ? 200 : 503;
    response.body = boost::json::serialize(boost::json::object{
        {"status", ready ? "ready" : "not_ready"}, {"checks", std::move(checks)}});
  } else if (path == "/metrics") {
    response.content_type = "text/plain; version=0.0.4; charset=utf-8";
    response.body = metrics_.Render();
  } else {
    return respond(ErrorResponse(domain::ErrorCode::kNotFound, "no such route"));
  }
  respond(std::move(response));
}

}  // namespace redpacket::http
