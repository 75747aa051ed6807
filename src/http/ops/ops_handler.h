// The operations endpoints of a process that serves no API (`redpacket worker`): GET /healthz,
// GET /readyz (from a readiness function) and GET /metrics (Prometheus, without a token: its port
// is the scrape network's, docs/decisions.md §32). Another method on those is 405, everything
// else 404. Runs on the I/O threads; `ready` must not block. Thread-safe.
#pragma once

#include <functional>
#include <map>
#include <string>

#include "http/ops/metrics.h"
#include "http/transport/request_handler.h"

namespace redpacket::http {

class OpsHandler final : public RequestHandler {
 public:
  // Each check with "ok" or what is wrong; ready when all are "ok".
  using Readiness = std::function<std::map<std::string, std::string>()>;
  OpsHandler(Metrics& metrics, Readiness ready) : metrics_(metrics), ready_(std::move(ready)) {}
  void Handle(Request request, Responder respond) override;

 private:
  Metrics& metrics_;
  Readiness ready_;
};

}  // namespace redpacket::http
