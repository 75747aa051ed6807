// OpsHandler: /healthz, /readyz, /metrics.
#include "http/ops/ops_handler.h"

#include "http/ops/ops_responses.h"

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
  if (path == "/healthz") return respond(HealthResponse());
  if (path == "/metrics") return respond(MetricsResponse(metrics_));
  boost::json::object checks;
  bool ready = true;
  for (const auto& [name, state] : ready_()) {
    checks[name] = state;
    ready = ready && state == "ok";
  }
  respond(ReadinessResponse(ready, std::move(checks)));
}

}  // namespace redpacket::http
