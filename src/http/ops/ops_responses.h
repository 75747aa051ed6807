// The answers of the operations endpoints that every process serves, the API server
// (handlers/ops_handlers.cc) as the worker (ops_handler.h): GET /healthz, /readyz and /metrics.
// Pure functions but for Metrics::Render; thread-safe.
#pragma once

#include <boost/json/object.hpp>

#include "http/ops/metrics.h"
#include "http/transport/response.h"

namespace redpacket::http {

// 200 {"status":"ok"}
Response HealthResponse();
// 200 {"status":"ready","checks":{...}}, or 503 {"status":"not_ready","checks":{...}}
Response ReadinessResponse(bool ready, boost::json::object checks);
// 200 with the Prometheus text format of `metrics`.
Response MetricsResponse(Metrics& metrics);

}  // namespace redpacket::http
