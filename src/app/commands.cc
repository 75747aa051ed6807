// The subcommands: serve (wiring, signals, graceful shutdown), migrate, audit, token, seed.
#include "app/commands.h"

#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <cctype>
#include <future>
#include <iostream>
#include <thread>

#include <boost/json.hpp>
#include <fmt/format.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "app/embedded_backend.h"
#include "audit/audit.h"
#include "http/api.h"
#include "http/client.h"
#include "http/server.h"
#include "http/token.h"
#include "ledger/sqlite/sqlite_ledger.h"
#include "net/redis/endpoint.h"
#include "service/red_packet_service.h"
#include "store/redis/redis_store.h"

namespace redpacket::app {

void SetUpLogging(const std::string& level) {
  auto logger = spdlog::stderr_color_mt("redpacket");
  spdlog::set_default_logger(logger);
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%eZ level=%l thread=%t %v", spdlog::pattern_time_type::utc);
  spdlog::set_level(spdlog::level::from_str(level));
}

namespace {

void PrintDevExample(const Config& config, std::uint16_t port) {
  const std::string base = fmt::format("http://{}:{}", config.host, port);
  std::cout << fmt::format(R"(
redpacket is running in {1} --dev mode on {0}  (Ctrl-C stops it)
Try it (X-User-Id names the caller in --dev mode):

  curl -s -X POST {0}/v1/users -d '{{"name":"alice"}}'
  curl -s -X POST {0}/v1/users/1/deposit -d '{{"amount_cents":10000,"request_id":"d-1"}}'
  curl -s -X POST {0}/v1/packets -H 'X-User-Id: 1' -d '{{"total_cents":1000,"count":5,"kind":"lucky","greeting":"恭喜发财"}}'
  curl -s -X POST {0}/v1/packets/1/grab -H 'X-User-Id: 2'
  curl -s {0}/v1/packets/1 -H 'X-User-Id: 2'
  curl -s {0}/v1/users/2/balance -H 'X-User-Id: 2'

)",
                           base, config.mode)
            << std::flush;
}

// How long start-up waits for the Redis Cluster's slot map before giving up.
constexpr std::chrono::seconds kRedisConnectWait{5};

// Cluster mode's store on the server's I/O loops; blocks until every client has the slot map.
// Throws std::runtime_error "cannot reach Redis at <nodes>: ..." when it cannot.
std::unique_ptr<store::PacketStore> ConnectRedisStore(
    const std::vector<boost::asio::io_context*>& io_contexts,
    std::vector<net::redis::Endpoint> seeds, const std::string& nodes, bus::EventSink& sink) {
  auto store = std::make_unique<store::redis::RedisStore>(io_contexts, std::move(seeds), sink);
  // Shared: after a timeout the store (and this frame) is gone when the answer comes.
  auto connected = std::make_shared<std::promise<domain::Status>>();
  auto answer = connected->get_future();
  store->Connect([connected](domain::Status status) { connected->set_value(std::move(status)); });
  if (answer.wait_for(kRedisConnectWait) != std::future_status::ready) {
    throw std::runtime_error(fmt::format("cannot reach Redis at {}: no slot map within {} s",
                                         nodes, kRedisConnectWait.count()));
  }
  if (domain::Status status = answer.get(); !status) {
    throw std::runtime_error(
        fmt::format("cannot reach Redis at {}: {}", nodes, status.error().message));
  }
  return store;
}

bool IsValidJournalName(const std::string& name) {
  return std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_';
  });
}

}  // namespace

int RunServe(const Config& config) {
  SetUpLogging(config.log_level);
  const bool cluster = config.mode == "cluster";
  std::vector<net::redis::Endpoint> redis_seeds;
  if (cluster) {
    if (config.redis_nodes.empty()) {
      spdlog::critical("--mode cluster needs the Redis Cluster's nodes: --redis-nodes "
                       "host:port[,host:port...] (env REDPACKET_REDIS_NODES, TOML redis_nodes)");
      return 2;
    }
    auto parsed = net::redis::ParseEndpointList(config.redis_nodes);
    if (!parsed) {
      spdlog::critical("invalid --redis-nodes '{}': expected host:port[,host:port...]",
                       config.redis_nodes);
      return 2;
    }
    redis_seeds = std::move(*parsed);
  }
  if (!IsValidJournalName(config.journal_name)) {
    spdlog::critical("invalid --journal-name '{}': letters, digits, '-' and '_' only",
                     config.journal_name);
    return 2;
  }
  // Signals are taken by sigwait on this thread only: block them before any thread starts.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  http::ApiOptions api_options;
  api_options.dev = config.dev;
  api_options.token_secret = EffectiveTokenSecret(config);

  EmbeddedOptions embedded_options;
  embedded_options.data_dir = config.data_dir;
  embedded_options.journal_name = config.journal_name;
  embedded_options.journal_gather = std::chrono::microseconds(config.journal_gather_us);
  EmbeddedBackend backend(embedded_options);

  service::ServiceOptions service_options;
  service_options.limits = config.limits;
  service_options.sweep_interval = std::chrono::milliseconds(config.sweep_interval_ms);
  // The parts are made once the backend has started (the store needs its sink); the Redis
  // store also runs on the server's I/O loops (no thread of its own, no hop between an HTTP
  // request and its Redis command), which exist only once the server has started.
  auto io_contexts = std::make_shared<std::vector<boost::asio::io_context*>>();
  std::unique_ptr<service::RedPacketService> service_holder;
  auto make_service = [&] {
    service::ServiceParts parts = backend.MakeServiceParts();
    if (cluster) {
      parts.store_factory = [io_contexts, redis_seeds, nodes = config.redis_nodes, &backend] {
        return ConnectRedisStore(*io_contexts, redis_seeds, nodes, backend.sink());
      };
      parts.store_keeps_packets = true;
    }
    return std::make_unique<service::RedPacketService>(service_options, std::move(parts));
  };
  // The API holds a reference to the service; it is made before the server starts.
  service::RedPacketService* service = nullptr;
  try {
    backend.Start();
    service_holder = make_service();
    service = service_holder.get();
  } catch (const std::exception& error) {
    spdlog::critical("startup failed: {}", error.what());
    return 1;
  }
  http::Api api(api_options, *service);
  backend.AddMetrics(api.metrics());

  http::ServerOptions server_options;
  server_options.host = config.host;
  server_options.port = config.port;
  server_options.threads = config.threads > 0 ? config.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  server_options.idle_timeout = std::chrono::milliseconds(config.idle_timeout_ms);
  http::Server server(server_options, api);
  try {
    server.Start();
  } catch (const std::exception& error) {
    spdlog::critical("{}", error.what());
    return 1;
  }
  api.WatchServer(server);
  *io_contexts = server.io_contexts();
  spdlog::info("listening on http://{}:{} mode={} threads={} dev={} data_dir={}", config.host, server.port(),
               config.mode, server_options.threads, config.dev, config.data_dir);
  if (cluster) spdlog::info("redis cluster nodes: {}", config.redis_nodes);
  try {
    // /readyz answers 503 until this returns.
    service->Start();
  } catch (const std::exception& error) {
    spdlog::critical("startup failed: {}", error.what());
    server.Stop(std::chrono::milliseconds(0));
    return 1;
  }
  spdlog::info("ready");
  if (config.dev) PrintDevExample(config, server.port());

  int signal_number = 0;
  sigwait(&signals, &signal_number);
  spdlog::info("received {}, draining", signal_number == SIGTERM ? "SIGTERM" : "SIGINT");
  // Order: (cluster) the sweeper ends first, while the loops still deliver its Redis replies
  // (afterwards a sweep would wait out its timeout); the server stops taking requests and stops
  // its io_contexts; the service then drains the journal into the ledger and (cluster) destroys
  // the Redis store, which must not outlive the loops' owner nor go while they run.
  if (cluster) service->StopSweeper();
  server.Stop(std::chrono::milliseconds(config.shutdown_grace_ms));
  backend.Stop();
  service->Stop();
  spdlog::info("stopped cleanly");
  return 0;
}

int RunMigrate(const Config& config) {
  SetUpLogging(config.log_level);
  std::filesystem::create_directories(config.data_dir);
  const auto file = std::filesystem::path(config.data_dir) / "ledger.sqlite";
  auto ledger = ledger::OpenSqliteLedger(file);
  if (auto status = ledger->Migrate(); !status) {
    spdlog::critical("migration failed: {}", status.error().message);
    return 1;
  }
  std::cout << "ledger schema is current: " << file.string() << "\n";
  return 0;
}

int RunAudit(const Config& config) {
  SetUpLogging(config.log_level);
  audit::AuditReport report = audit::RunAudit(config.data_dir);
  for (const auto& line : report.checked) std::cout << "checked: " << line << "\n";
  for (const auto& line : report.violations) std::cout << "VIOLATION: " << line << "\n";
  std::cout << (report.ok() ? "audit OK\n" : fmt::format("audit FAILED: {} violations\n", report.violations.size()));
  return report.ok() ? 0 : 1;
}

int RunToken(const Config& config, std::int64_t user_id, std::int64_t ttl_s, bool admin) {
  http::TokenClaims claims;
  claims.user_id = user_id;
  claims.admin = admin;
  claims.expires_unix_s =
      std::chrono::duration_cast<std::chrono::seconds>(domain::Clock::now().time_since_epoch()).count() + ttl_s;
  std::cout << http::SignToken(claims, EffectiveTokenSecret(config)) << "\n";
  return 0;
}

int RunSeed(const Config& config, const SeedOptions& options) {
  SetUpLogging("warn");
  namespace json = boost::json;
  const std::string secret = EffectiveTokenSecret(config);
  const auto now = std::chrono::duration_cast<std::chrono::seconds>(domain::Clock::now().time_since_epoch()).count();
  auto bearer = [&](domain::UserId user, bool admin) {
    return std::map<std::string, std::string>{
        {"Authorization", "Bearer " + http::SignToken({user, now + 3600, admin}, secret)}};
  };
  http::Client client(options.host, options.port);
  const auto admin = bearer(1, true);
  std::vector<domain::UserId> users;
  for (int i = 0; i < options.users; ++i) {
    auto response = client.Post("/v1/users", fmt::format(R"({{"name":"user{}"}})", i + 1), admin);
    if (response.status != 201) {
      std::cerr << "seed: creating a user failed: " << response.status << " " << response.body << "\n";
      return 1;
    }
    const auto user_id = json::parse(response.body).at("user_id").as_int64();
    users.push_back(user_id);
    response = client.Post(fmt::format("/v1/users/{}/deposit", user_id),
                           fmt::format(R"({{"amount_cents":100000,"request_id":"seed-{}"}})", user_id), admin);
    if (response.status != 200) {
      std::cerr << "seed: deposit failed: " << response.status << " " << response.body << "\n";
      return 1;
    }
  }
  std::cout << fmt::format("seed: {} users ({}..{}), 1000.00 CNY each\n", users.size(), users.front(), users.back());
  for (int i = 0; i < options.packets; ++i) {
    const domain::UserId sender = users[static_cast<std::size_t>(i) % users.size()];
    auto response = client.Post("/v1/packets",
                                // Within the default limits; an equal packet's total divides by its count.
                                fmt::format(R"({{"total_cents":{},"count":{},"kind":"{}","greeting":"恭喜发财 #{}"}})",
                                            1000 * (1 + i % 10), i % 2 ? 10 : 5 + i % 6, i % 2 ? "equal" : "lucky", i + 1),
                                bearer(sender, false));
    if (response.status != 201) {
      std::cerr << "seed: creating a packet failed: " << response.status << " " << response.body << "\n";
      return 1;
    }
    std::cout << "seed: packet " << json::parse(response.body).at("packet_id").as_string().c_str() << " from user "
              << sender << "\n";
  }
  return 0;
}

}  // namespace redpacket::app
