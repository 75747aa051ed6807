// GET /healthz, /readyz, and the metrics (GET /metrics and GET /v1/ops/metrics: who may read them
// is the routing table's, api.cc).
#include <boost/json/object.hpp>

#include "http/handlers/handlers.h"
#include "http/ops/ops_responses.h"

namespace redpacket::http {

void HandleHealth(Call& call) { MakeReply(call)(HealthResponse()); }

void HandleReady(Call& call) {
  const Reply reply = MakeReply(call);
  if (!call.service().ready()) {
    // Starting; and why it takes long when a dependency is the reason (the ledger's applier
    // stalled on a full disk while it catches up with the journal).
    return call.service().CheckReady([reply](service::RedPacketService::Checks checks) {
      boost::json::object body_checks{{"service", "starting"}};
      for (const auto& [name, state] : checks) {
        if (state != "ok" && name != "store") body_checks[name] = state;
      }
      reply(ReadinessResponse(false, std::move(body_checks)));
    });
  }
  call.service().CheckReady([reply](service::RedPacketService::Checks checks) {
    boost::json::object body_checks;
    bool ready = true;
    for (const auto& [name, state] : checks) {
      body_checks[name] = state;
      // Still ready without a dependency that no request waits for: a replica that is down or
      // behind only sends reads to the primary, and a broker that is away only delays
      // publication (grabs and refunds wait in the outbox; the relay delivers them later).
      if (state != "ok" && name != "mariadb_replica" && name != "kafka") ready = false;
    }
    reply(ReadinessResponse(ready, std::move(body_checks)));
  });
}

void HandleMetrics(Call& call) { MakeReply(call)(MetricsResponse(call.metrics())); }

}  // namespace redpacket::http
