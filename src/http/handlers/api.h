// The HTTP API of docs/API.md as the server's RequestHandler: one routing table (api.cc: method,
// path, access, rate limit, handler) and handlers per resource (handlers.h) that only parse and
// validate, then call the service. Runs on the I/O threads; never blocks; thread-safe.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "domain/clock.h"
#include "http/access/rate_limiter.h"
#include "http/ops/metrics.h"
#include "http/transport/server.h"
#include "service/red_packet_service.h"

namespace redpacket::http {

struct ApiOptions {
  bool dev = false;  // X-User-Id accepted as the caller, admin endpoints open, GET /grab served
  std::vector<std::string> token_secrets;  // newest first: any one verifies a token
  // Per caller (the token's user, X-User-Id in --dev, else the client address): requests a
  // second and burst; 429 rate_limited with Retry-After beyond. 0: no limit.
  std::int64_t rate_limit_per_s = 0;
  std::int64_t rate_limit_burst = 40;
  // "Now" of a token's expiry check (must outlive the Api).
  const domain::TimeSource* clock = &domain::SystemTime();
};

class PacketEvents;

class Api final : public RequestHandler {
 public:
  Api(ApiOptions options, service::RedPacketService& service);
  ~Api() override;
  void Handle(Request request, Responder respond) override;
  Metrics& metrics() { return *metrics_; }
  // Exposes the server's counters as gauges (call once, after the server exists).
  void WatchServer(const Server& server);
  // The live event streams (GET /v1/packets/{id}/events; 503 without), told of every grab
  // acknowledged here. Set before the server starts; it must outlive the server.
  void SetPacketEvents(PacketEvents* events);

  struct Call;  // one request in flight (call.h)

 private:
  ApiOptions options_;
  service::RedPacketService& service_;
  std::unique_ptr<Metrics> metrics_;
  RateLimiter rate_limiter_;
  PacketEvents* events_ = nullptr;
};

}  // namespace redpacket::http
