// Health, readiness and metrics responses.
#include "http/ops/ops_responses.h"

#include <boost/json/serialize.hpp>

namespace redpacket::http {

Response HealthResponse() {
  Response response;
  response.body = R"({"status":"ok"})";
  return response;
}

Response ReadinessResponse(bool ready, boost::json::object checks) {
  Response response;
  response.status = ready ? 200 : 503;
  response.body = boost::json::serialize(boost::json::object{
      {"status", ready ? "ready" : "not_ready"}, {"checks", std::move(checks)}});
  return response;
}

Response MetricsResponse(Metrics& metrics) {
  Response response;
  response.content_type = "text/plain; version=0.0.4; charset=utf-8";
  response.body = metrics.Render();
  return response;
}

}  // namespace redpacket::http
