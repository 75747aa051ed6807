// The API's routing table (kRoutes: every endpoint with its handler, access and rate limit) and
// the dispatch that applies it: match, readiness, the caller, the rate limit, the access check,
// then the handler (handlers.h). Runs on the I/O threads; never blocks.
#include "http/handlers/api.h"

#include <fmt/format.h>

#include <array>
#include <optional>

#include "http/access/caller.h"
#include "http/events/packet_events.h"
#include "http/handlers/call.h"
#include "http/handlers/handlers.h"

namespace redpacket::http {

using boost::beast::http::verb;
using domain::ErrorCode;
using SteadyClock = std::chrono::steady_clock;

namespace {

enum class Access {
  kPublic,  // no caller needed
  kUser,    // any authenticated caller
  kAdmin,   // an admin token (open in --dev)
  kDevOnly  // exists only in --dev (the seed-compatible GET /grab)
};

enum class Limit {
  kExempt,    // never rate limited (health checks and scrapes must get through a flood)
  kPerCaller  // the caller's token bucket (rate_limit_per_user, rate_limit_burst)
};

struct Route {
  verb method;
  std::string_view pattern;  // "{id}" matches one path segment
  std::string_view name;     // the metrics label
  Access access;
  Limit limit;
  void (*handler)(Call&);
};

// Every endpoint, its access, rate limit and handler. Body size and header limits are the
// server's (64 KiB body, 8 KiB headers; 413 beyond), as are the head deadline and connection caps.
// The metrics (docs/decisions.md §32) are operators' data: /metrics is public on the server's own
// port, which is the scrape network's (Prometheus reads every API server and worker there without
// a token), and the public edge (nginx) does not pass it; from outside, the dashboard reads the
// same text at /v1/ops/metrics with an admin token.
constexpr std::array kRoutes = {
    Route{verb::get, "/", "root", Access::kPublic, Limit::kExempt, HandleRoot},
    Route{verb::get, "/healthz", "healthz", Access::kPublic, Limit::kExempt, HandleHealth},
    Route{verb::get, "/readyz", "readyz", Access::kPublic, Limit::kExempt, HandleReady},
    Route{verb::get, "/metrics", "metrics", Access::kPublic, Limit::kExempt, HandleMetrics},
    Route{verb::get, "/openapi.json", "openapi", Access::kPublic, Limit::kExempt, HandleOpenApi},
    Route{verb::post, "/v1/users", "create_user", Access::kAdmin, Limit::kPerCaller,
          HandleCreateUser},
    Route{verb::post, "/v1/users/{id}/deposit", "deposit", Access::kAdmin, Limit::kPerCaller,
          HandleDeposit},
    Route{verb::get, "/v1/users/{id}/balance", "balance", Access::kUser, Limit::kPerCaller,
          HandleBalance},
    Route{verb::get, "/v1/users/{id}/history", "history", Access::kUser, Limit::kPerCaller,
          HandleHistory},
    Route{verb::post, "/v1/packets", "create_packet", Access::kUser, Limit::kPerCaller,
          HandleCreatePacket},
    Route{verb::post, "/v1/packets/{id}/grab", "grab", Access::kUser, Limit::kPerCaller,
          HandleGrab},
    Route{verb::get, "/v1/packets/{id}", "packet", Access::kUser, Limit::kPerCaller, HandlePacket},
    Route{verb::get, "/v1/packets/{id}/events", "packet_events", Access::kUser, Limit::kPerCaller,
          HandlePacketEvents},
    Route{verb::get, "/v1/ops/metrics", "ops_metrics", Access::kAdmin, Limit::kExempt,
          HandleMetrics},
    Route{verb::get, "/grab", "seed_grab", Access::kDevOnly, Limit::kPerCaller, HandleSeedGrab},
    // The web page (assets/app_assets.h): static, public; what it shows comes from the API above.
    Route{verb::get, "/app", "app_redirect", Access::kPublic, Limit::kExempt, HandleAppRedirect},
    Route{verb::get, "/app/", "app_home", Access::kPublic, Limit::kExempt, HandleAppPage},
    Route{verb::get, "/app/ops", "app_ops", Access::kPublic, Limit::kExempt, HandleAppPage},
    Route{verb::get, "/app/p/{id}", "app_packet", Access::kPublic, Limit::kExempt, HandleAppPage},
    Route{verb::get, "/app/static/{id}", "app_static", Access::kPublic, Limit::kExempt,
          HandleAppAsset},
};
constexpr std::size_t kUnmatchedRoute = kRoutes.size();  // metrics label "unmatched"

bool Match(std::string_view pattern, std::string_view path,
           std::array<std::string_view, 2>& params) {
  std::size_t param = 0;
  while (!pattern.empty() && !path.empty()) {
    if (pattern.starts_with("{id}")) {
      const auto end = path.find('/');
      if (end == 0 || param == params.size()) return false;
      params[param++] = path.substr(0, end);
      pattern.remove_prefix(4);
      path = end == std::string_view::npos ? std::string_view() : path.substr(end);
    } else {
      if (pattern.front() != path.front()) return false;
      pattern.remove_prefix(1);
      path.remove_prefix(1);
    }
  }
  return pattern.empty() && path.empty();
}

// Takes a token from the caller's bucket (the client address's when there is no caller: a
// credential is verified before it is charged, so a forged token cannot drain a user's bucket).
// Replies 429 with Retry-After and returns false when the bucket is empty. Admin tokens are not
// limited: they are the operators' scripts (seeding, back office), not a person's client.
bool Admit(const Call& call, RateLimiter& limiter, const Reply& reply) {
  if (!limiter.enabled() || (call.caller && call.caller->admin)) return true;
  const std::uint64_t key = call.caller ? UserKey(call.caller->user_id) : call.request.peer_key;
  const std::int64_t retry_after_s = limiter.Acquire(key, call.started);
  if (retry_after_s == 0) return true;
  Response response = ErrorResponse(
      ErrorCode::kRateLimited,
      fmt::format("too many requests from this caller; retry in {} s", retry_after_s));
  response.retry_after_s = static_cast<int>(retry_after_s);
  reply(std::move(response));
  return false;
}

std::vector<std::string> RouteNames() {
  std::vector<std::string> names;
  for (const auto& route : kRoutes) names.emplace_back(route.name);
  names.emplace_back("unmatched");
  return names;
}

}  // namespace

Api::Api(ApiOptions options, service::RedPacketService& service)
    : options_(std::move(options)),
      service_(service),
      metrics_(std::make_unique<Metrics>(RouteNames())),
      rate_limiter_({options_.rate_limit_per_s, options_.rate_limit_burst}) {
  auto stat = [&service](auto field) {
    return [&service, field] { return static_cast<double>(service.stats().*field); };
  };
  metrics_->AddGauge("redpacket_ledger_queue_depth",
                     "Creates, deposits and new users waiting for the next ledger batch",
                     stat(&service::ServiceStats::ledger_queue_depth));
  metrics_->AddCounter("redpacket_ledger_write_batches_total",
                       "Ledger transactions of creates, deposits and new users (one commit each); "
                       "writes per commit = "
                       "redpacket_ledger_writes_total / this",
                       {}, stat(&service::ServiceStats::write_batches));
  metrics_->AddCounter("redpacket_ledger_writes_total",
                       "Creates, deposits and new users answered by the ledger writer", {},
                       stat(&service::ServiceStats::writes));
  metrics_->AddGauge("redpacket_packets_in_memory", "Open packets held by the hot-path store",
                     stat(&service::ServiceStats::packets_in_memory));
  metrics_->AddGauge("redpacket_ready", "1 once recovery is done",
                     [&service] { return service.ready() ? 1.0 : 0.0; });
  metrics_->AddGauge("redpacket_rate_limit_buckets",
                     "Callers with a token bucket of the rate limit (idle ones are dropped)",
                     [this] { return static_cast<double>(rate_limiter_.bucket_count()); });
}

Api::~Api() = default;

void Api::SetPacketEvents(PacketEvents* events) {
  events_ = events;
  metrics_->AddGauge("redpacket_event_streams_open",
                     "Open event streams (GET /v1/packets/{id}/events)",
                     [events] { return static_cast<double>(events->open_streams()); });
  metrics_->AddCounter("redpacket_event_streams_refused_total",
                       "Event streams refused: event_streams_max reached", {},
                       [events] { return static_cast<double>(events->refused_streams()); });
}

void Api::WatchServer(const Server& server) {
  const ServerStats* stats = &server.stats();
  metrics_->AddCounter(
      "redpacket_event_streams_dropped_total",
      "Event streams closed because the reader did not keep up (stream_buffer_bytes)", {},
      [stats] { return static_cast<double>(stats->streams_dropped.load()); });
  metrics_->AddGauge("redpacket_http_open_connections", "Open client connections",
                     [stats] { return static_cast<double>(stats->open_connections.load()); });
  metrics_->AddGauge("redpacket_http_parse_errors_total", "Malformed or oversized requests",
                     [stats] { return static_cast<double>(stats->parse_errors.load()); });
  metrics_->AddCounter(
      "redpacket_http_header_timeouts_total",
      "Connections closed because a request head was not complete within header_timeout_ms", {},
      [stats] { return static_cast<double>(stats->header_timeouts.load()); });
  constexpr const char* kRejectedHelp =
      "New connections closed at once because a connection cap was reached";
  metrics_->AddCounter("redpacket_connections_rejected_total", kRejectedHelp,
                       {{"reason", "max_connections"}},
                       [stats] { return static_cast<double>(stats->rejected_server_full.load()); });
  metrics_->AddCounter(
      "redpacket_connections_rejected_total", kRejectedHelp, {{"reason", "max_connections_per_ip"}},
      [stats] { return static_cast<double>(stats->rejected_address_full.load()); });
}

void Api::Handle(Request request, Responder respond) {
  Call call{this, kUnmatchedRoute, std::move(request), std::move(respond), SteadyClock::now(),
            {},   std::nullopt};
  const std::string_view path = call.request.path();
  const Route* route = nullptr;
  std::string allow;  // the methods of the routes of this path (the Allow header of a 405)
  for (std::size_t i = 0; i < kRoutes.size(); ++i) {
    std::array<std::string_view, 2> params{};
    if (!Match(kRoutes[i].pattern, path, params)) continue;
    if (kRoutes[i].access == Access::kDevOnly && !options_.dev) continue;
    if (kRoutes[i].method != call.request.method) {
      if (!allow.empty()) allow += ", ";
      allow += boost::beast::http::to_string(kRoutes[i].method);
      continue;
    }
    route = &kRoutes[i];
    call.route = i;
    call.params = params;
    break;
  }
  const Reply reply = MakeReply(call);
  if (route == nullptr && allow.empty())
    return reply.Error(ErrorCode::kNotFound, "no such endpoint");
  if (route == nullptr) {
    // A known path asked with another method: 405 naming the methods it has (RFC 9110 15.5.6).
    Response response = ErrorResponse(ErrorCode::kMethodNotAllowed,
                                      "method not allowed on this path; allowed: " + allow);
    response.allow = std::move(allow);
    return reply(std::move(response));
  }
  if (route->access != Access::kPublic && !service_.ready()) {
    return reply.Error(ErrorCode::kUnavailable, "recovering: not ready yet");
  }
  const bool needs_caller = route->access == Access::kUser || route->access == Access::kAdmin;
  CallerCheck credential;
  if (needs_caller) {
    const std::int64_t now_unix_s = domain::ToUnixSeconds(options_.clock->Now());
    credential = IdentifyCaller(call.request, options_.token_secrets, options_.dev, now_unix_s);
    call.caller = credential.caller;
  }
  // Charged before a bad credential is refused: refusals count against the client address.
  if (route->limit == Limit::kPerCaller && !Admit(call, rate_limiter_, reply)) return;
  if (credential.rejection) return reply.Error(ErrorCode::kUnauthenticated, *credential.rejection);
  if (needs_caller) {
    if (route->access == Access::kUser && !call.caller) {
      return reply.Error(ErrorCode::kUnauthenticated, "an Authorization: Bearer token is required");
    }
    if (route->access == Access::kAdmin && !options_.dev) {
      if (!call.caller)
        return reply.Error(ErrorCode::kUnauthenticated, "an admin token is required");
      if (!call.caller->admin)
        return reply.Error(ErrorCode::kForbidden, "this endpoint needs an admin token");
    }
  }
  route->handler(call);
}

}  // namespace redpacket::http
