// The routing table and the handlers of every endpoint (API.md). Handlers parse and validate,
// resolve the caller, call the service, and turn its result into JSON.
#include "http/api.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <boost/json.hpp>
#include <optional>

#include "http/app_assets.h"
#include "http/openapi.h"
#include "http/packet_events.h"
#include "http/packet_json.h"
#include "http/request_fields.h"
#include "http/token.h"

namespace redpacket::http {

namespace json = boost::json;
using boost::beast::http::verb;
using domain::ErrorCode;
using SteadyClock = std::chrono::steady_clock;

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

struct Caller {
  domain::UserId user_id = 0;
  bool admin = false;
};

struct Api::Call {
  Api* api;
  std::size_t route;
  Request request;
  Responder respond;
  SteadyClock::time_point started;
  std::array<std::string_view, 2> params;  // the {id}s of the path, in order
  std::optional<Caller> caller;

  service::RedPacketService& service() const { return api->service_; }
};

namespace {

using Call = Api::Call;
using Handler = void (*)(Call&);

// Finishes a call: metrics, a log line for server errors, the response to the connection.
// Takes only what it needs by value so it can run on any thread after the Call is gone.
struct Reply {
  Api* api;
  Metrics* metrics;
  std::size_t route;
  Responder respond;
  SteadyClock::time_point started;
  std::string request_id;

  void operator()(Response response) const {
    const double seconds = std::chrono::duration<double>(SteadyClock::now() - started).count();
    metrics->ObserveRequest(route, response.status, seconds);
    if (response.status >= 500) {
      spdlog::warn("request failed status={} request_id={} body={}", response.status, request_id,
                   response.body);
    }
    respond(std::move(response));
  }
  void Error(const domain::Error& error) const { (*this)(ErrorResponse(error)); }
  void Error(ErrorCode code, std::string_view message) const {
    (*this)(ErrorResponse(code, message));
  }
  void Json(int status, const json::value& value) const {
    Response response;
    response.status = status;
    response.body = json::serialize(value);
    (*this)(std::move(response));
  }
};

Reply MakeReply(Call& call, Metrics& metrics) {
  return Reply{call.api,     &metrics,     call.route,
               call.respond, call.started, call.request.request_id_header};
}

// ---- parsing helpers (the field rules themselves are in request_fields.h)
// ------------------------

std::optional<std::int64_t> PathId(const Call& call, std::size_t index, std::int64_t max,
                                   std::string_view what, const Reply& reply) {
  std::int64_t id = 0;
  if (!ParsePositive(call.params[index], max, &id)) {
    reply.Error(ErrorCode::kBadRequest, fmt::format("{} must be a positive integer", what));
    return std::nullopt;
  }
  return id;
}

// The caller may act on `user_id`'s account: itself, or an admin.
bool OwnsAccount(const Call& call, domain::UserId user_id, const Reply& reply) {
  if (call.caller && (call.caller->user_id == user_id || call.caller->admin)) return true;
  reply.Error(ErrorCode::kForbidden, "only the account's owner may read it");
  return false;
}

std::string Id(domain::PacketId id) { return std::to_string(id); }

// ---- handlers --------------------------------------------------------------------------------

void HandleRoot(Call& call);
void HandleHealth(Call& call);
void HandleReady(Call& call);
void HandleMetrics(Call& call);
void HandleOpenApi(Call& call);
void HandleCreateUser(Call& call);
void HandleDeposit(Call& call);
void HandleBalance(Call& call);
void HandleHistory(Call& call);
void HandleCreatePacket(Call& call);
void HandleGrab(Call& call);
void HandlePacket(Call& call);
void HandleSeedGrab(Call& call);
void HandlePacketEvents(Call& call);
void HandleAppPage(Call& call);
void HandleAppRedirect(Call& call);
void HandleAppAsset(Call& call);

struct Route {
  verb method;
  std::string_view pattern;  // "{id}" matches one path segment
  std::string_view name;     // the metrics label
  Access access;
  Limit limit;
  Handler handler;
};

// Every endpoint, its access, rate limit and handler. Body size and header limits are the
// server's (64 KiB body, 8 KiB headers; 413 beyond), as are the head deadline and connection caps.
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
    // The web page (app_assets.h): static, public; what it shows comes from the API above.
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

Metrics& MetricsOf(Call& call);

void HandleRoot(Call& call) {
  // A browser opening the address `make run` prints gets the page; every other client JSON.
  if (WantsHtml(call.request)) return MakeReply(call, MetricsOf(call))(RedirectResponse("/app/"));
  Response response;
  response.body = R"({"message":"Red Packet System is running!"})";
  MakeReply(call, MetricsOf(call))(std::move(response));
}

void HandleHealth(Call& call) {
  Response response;
  response.body = R"({"status":"ok"})";
  MakeReply(call, MetricsOf(call))(std::move(response));
}

void HandleReady(Call& call) {
  const Reply reply = MakeReply(call, MetricsOf(call));
  if (!call.service().ready()) {
    // Starting; and why it takes long when a dependency is the reason (the ledger's applier
    // stalled on a full disk while it catches up with the journal).
    return call.service().CheckReady([reply](service::RedPacketService::Checks checks) {
      json::object body_checks{{"service", "starting"}};
      for (const auto& [name, state] : checks) {
        if (state != "ok" && name != "store") body_checks[name] = state;
      }
      reply.Json(503, json::object{{"status", "not_ready"}, {"checks", std::move(body_checks)}});
    });
  }
  call.service().CheckReady([reply](service::RedPacketService::Checks checks) {
    json::object body_checks;
    bool ready = true;
    for (const auto& [name, state] : checks) {
      body_checks[name] = state;
      // Still ready without a dependency that no request waits for: a replica that is down or
      // behind only sends reads to the primary, and a broker that is away only delays
      // publication (grabs and refunds wait in the outbox; the relay delivers them later).
      if (state != "ok" && name != "mariadb_replica" && name != "kafka") ready = false;
    }
    reply.Json(ready ? 200 : 503, json::object{{"status", ready ? "ready" : "not_ready"},
                                               {"checks", std::move(body_checks)}});
  });
}

void HandleMetrics(Call& call) {
  Response response;
  response.content_type = "text/plain; version=0.0.4; charset=utf-8";
  response.body = MetricsOf(call).Render();
  MakeReply(call, MetricsOf(call))(std::move(response));
}

void HandleOpenApi(Call& call) {
  Response response;
  response.body = OpenApiJson();
  MakeReply(call, MetricsOf(call))(std::move(response));
}

void HandleCreateUser(Call& call) {
  const Reply reply = MakeReply(call, MetricsOf(call));
  auto fields = ParseCreateUser(call.request.body);
  if (!fields) return reply.Error(fields.error());
  call.service().CreateUser(fields->name, [reply](domain::Result<domain::UserRecord> user) {
    if (!user) return reply.Error(user.error());
    spdlog::info("user created user_id={} request_id={}", user->user_id, reply.request_id);
    reply.Json(201, json::object{{"user_id", user->user_id},
                                 {"name", user->name},
                                 {"balance_cents", user->balance_cents}});
  });
}

void HandleDeposit(Call& call) {
  const Reply reply = MakeReply(call, MetricsOf(call));
  auto user_id = PathId(call, 0, domain::kMaxUserId, "user id", reply);
  if (!user_id) return;
  auto fields = ParseDeposit(call.request.body);
  if (!fields) return reply.Error(fields.error());
  call.service().Deposit(
      *user_id, fields->amount_cents, fields->request_id,
      [reply, user_id = *user_id,
       amount = fields->amount_cents](domain::Result<domain::Cents> balance) {
        if (!balance) return reply.Error(balance.error());
        spdlog::info("deposit user_id={} amount_cents={} request_id={}", user_id, amount,
                     reply.request_id);
        reply.Json(200, json::object{{"user_id", user_id}, {"balance_cents", *balance}});
      });
}

void HandleBalance(Call& call) {
  const Reply reply = MakeReply(call, MetricsOf(call));
  auto user_id = PathId(call, 0, domain::kMaxUserId, "user id", reply);
  if (!user_id || !OwnsAccount(call, *user_id, reply)) return;
  call.service().Balance(*user_id, [reply](domain::Result<service::BalanceView> view) {
    if (!view) return reply.Error(view.error());
    reply.Json(200, json::object{{"user_id", view->user_id},
                                 {"balance_cents", view->balance_cents},
                                 {"pending_cents", view->pending_cents}});
  });
}

void HandleHistory(Call& call) {
  const Reply reply = MakeReply(call, MetricsOf(call));
  auto user_id = PathId(call, 0, domain::kMaxUserId, "user id", reply);
  if (!user_id || !OwnsAccount(call, *user_id, reply)) return;
  auto query = ParseHistoryQuery(call.request.query());
  if (!query) return reply.Error(query.error());
  const domain::HistoryKind kind = query->kind;
  call.service().History(
      *user_id, kind, static_cast<int>(query->limit), query->cursor,
      [reply, kind](domain::Result<domain::HistoryPage> page) {
        if (!page) return reply.Error(page.error());
        json::array items;
        for (const auto& item : page->items) {
          if (kind == domain::HistoryKind::kReceived) {
            items.push_back(json::object{{"packet_id", Id(item.packet_id)},
                                         {"sender_id", item.sender_id},
                                         {"amount_cents", item.amount_cents},
                                         {"seq", item.seq},
                                         {"grabbed_at", domain::FormatTime(item.at)}});
          } else {
            items.push_back(json::object{{"packet_id", Id(item.packet_id)},
                                         {"kind", domain::ToString(item.kind)},
                                         {"greeting", item.greeting},
                                         {"total_cents", item.total_cents},
                                         {"count", item.count},
                                         {"status", domain::ToString(item.status)},
                                         {"created_at", domain::FormatTime(item.at)},
                                         {"expires_at", domain::FormatTime(item.expires_at)}});
          }
        }
        json::object out{{"items", std::move(items)}};
        out["next_cursor"] =
            page->next_cursor ? json::value(*page->next_cursor) : json::value(nullptr);
        reply.Json(200, out);
      });
}

void HandleCreatePacket(Call& call) {
  const Reply reply = MakeReply(call, MetricsOf(call));
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

// The hot path: the reply is formatted by hand, no JSON tree.
void GrabAndReply(Call& call, domain::PacketId packet_id, bool seed_format) {
  const domain::UserId user_id = call.caller->user_id;
  call.service().Grab(
      packet_id, user_id,
      [reply = MakeReply(call, MetricsOf(call)), packet_id, user_id, seed_format,
       events = call.api->events()](store::GrabResult result) {
        Response response;
        if (result.code == ErrorCode::kOk) {
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
        } else if (result.code == ErrorCode::kConflict) {
          response.status = 409;
          response.body = fmt::format(
              R"({{"error":"conflict","message":"{}","packet_id":"{}","amount_cents":{},"seq":{}}})",
              result.message, packet_id, result.amount_cents, result.seq);
        } else {
          response = ErrorResponse(result.code,
                                   result.message.empty() ? "no such packet" : result.message);
          // A grab's 503 is always worth retrying (repeating a grab never takes a second share).
          if (result.code == ErrorCode::kUnavailable) response.retry_after_s = 1;
        }
        reply(std::move(response));
      });
}

void HandleGrab(Call& call) {
  std::int64_t packet_id = 0;
  if (!ParsePositive(call.params[0], kMaxPacketId, &packet_id)) {
    return MakeReply(call, MetricsOf(call))
        .Error(ErrorCode::kBadRequest, "packet id must be a positive integer");
  }
  GrabAndReply(call, packet_id, false);
}

void HandleSeedGrab(Call& call) {
  const Reply reply = MakeReply(call, MetricsOf(call));
  auto query = ParseSeedGrabQuery(call.request.query());
  if (!query) return reply.Error(query.error());
  call.caller = Caller{query->user_id, false};
  GrabAndReply(call, query->packet_id, true);
}

void HandlePacket(Call& call) {
  const Reply reply = MakeReply(call, MetricsOf(call));
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
  const Reply reply = MakeReply(call, MetricsOf(call));
  auto packet_id = PathId(call, 0, kMaxPacketId, "packet id", reply);
  if (!packet_id) return;
  std::int64_t after_seq = 0;
  const std::string& last = call.request.last_event_id;
  if (!last.empty() && last != "0" &&
      !ParsePositive(last, std::numeric_limits<std::int64_t>::max(), &after_seq)) {
    return reply.Error(ErrorCode::kBadRequest,
                       "Last-Event-ID must be a grab's seq (a non-negative integer)");
  }
  PacketEvents* events = call.api->events();
  if (events == nullptr)
    return reply.Error(ErrorCode::kUnavailable, "event streams are off on this server");
  events->Open(*packet_id, after_seq, [reply](Response response) { reply(std::move(response)); });
}

void HandleAppPage(Call& call) {
  MakeReply(call, MetricsOf(call))(AppShellResponse(call.api->dev()));
}
void HandleAppRedirect(Call& call) { MakeReply(call, MetricsOf(call))(RedirectResponse("/app/")); }
void HandleAppAsset(Call& call) {
  MakeReply(call, MetricsOf(call))(WebAssetResponse(call.request, call.params[0]));
}

// ---- caller ----------------------------------------------------------------------------------

// Resolves the caller from the bearer token (or X-User-Id in --dev) into call.caller (left empty
// when no credential is given). Returns why a credential that is present is not valid, for a 401.
std::optional<std::string_view> ResolveCaller(Call& call, const ApiOptions& options) {
  const std::string& authorization = call.request.authorization;
  // A credential that is sent must be valid, even an empty one: it is never silently replaced by
  // X-User-Id (--dev) or by no caller at all.
  if (call.request.has_authorization) {
    constexpr std::string_view kBearer = "Bearer ";
    if (authorization.size() <= kBearer.size() ||
        !std::string_view(authorization).starts_with(kBearer)) {
      return "Authorization must be 'Bearer <token>'";
    }
    TokenClaims claims;
    const auto now =
        std::chrono::duration_cast<std::chrono::seconds>(domain::Clock::now().time_since_epoch())
            .count();
    switch (VerifyToken(std::string_view(authorization).substr(kBearer.size()),
                        options.token_secrets, now, &claims)) {
      case TokenCheck::kValid:
        call.caller = Caller{claims.user_id, claims.admin};
        return std::nullopt;
      case TokenCheck::kExpired:
        return "the token has expired";
      case TokenCheck::kMalformed:
      case TokenCheck::kBadSignature:
        return "the token is not valid";
    }
  }
  if (options.dev && !call.request.user_id_header.empty()) {
    std::int64_t user_id = 0;
    if (!ParsePositive(call.request.user_id_header, domain::kMaxUserId, &user_id)) {
      return "X-User-Id must be a positive integer below 2^53";
    }
    call.caller = Caller{user_id, false};
  }
  return std::nullopt;
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

}  // namespace

namespace {
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
  metrics_->AddGauge("redpacket_packets_expired_total",
                     "Packets this server's sweeper closed at expiry",
                     stat(&service::ServiceStats::packets_expired));
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

namespace {
Metrics& MetricsOf(Call& call) { return call.api->metrics(); }
}  // namespace

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
  const Reply reply = MakeReply(call, *metrics_);
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
  std::optional<std::string_view> bad_credential;
  if (route->access == Access::kUser || route->access == Access::kAdmin) {
    bad_credential = ResolveCaller(call, options_);
  }
  if (route->limit == Limit::kPerCaller && !Admit(call, rate_limiter_, reply)) return;
  if (bad_credential) return reply.Error(ErrorCode::kUnauthenticated, *bad_credential);
  if (route->access == Access::kUser || route->access == Access::kAdmin) {
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
