// `redpacket serve`: wiring of the backend of the chosen mode, the service and the HTTP server;
// signals and graceful shutdown.
#include <fmt/format.h>
#include <pthread.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>

#include <algorithm>
#include <cctype>
#include <iostream>
#include <memory>
#include <thread>

#include "app/cluster_backend.h"
#include "app/cluster_config.h"
#include "app/commands.h"
#include "app/embedded_backend.h"
#include "http/events/packet_events.h"
#include "http/handlers/api.h"
#include "http/transport/server.h"

namespace redpacket::app {
namespace {

void PrintDevExample(const Config& config, std::uint16_t port) {
  const std::string base = fmt::format("http://{}:{}", config.host, port);
  std::cout << fmt::format(R"(
redpacket is running in {1} --dev mode on {0}  (Ctrl-C stops it)

Open {0}/app/ in a browser: sign in as any user id (or open {0}/app/?as=2 in
another tab to be user 2), send a packet, open its link as other users and watch it live;
{0}/app/ops is the operators' dashboard.

Or with curl (X-User-Id names the caller in --dev mode):

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

bool IsValidJournalName(const std::string& name) {
  return std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_';
  });
}

// Raises the open-file limit to its hard maximum (connections are files) and returns the cap on
// connections it allows: `configured` (0: none), lowered so that a reserve of descriptors stays
// for the journal, the ledger and the backends' sockets; accept then never fails with EMFILE.
std::size_t ConnectionCapWithinFileLimit(std::int64_t configured) {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return static_cast<std::size_t>(configured);
  if (limit.rlim_cur < limit.rlim_max) {
    rlimit raised = limit;
    raised.rlim_cur = limit.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0) limit = raised;
  }
  if (limit.rlim_cur == RLIM_INFINITY) return static_cast<std::size_t>(configured);
  const auto files = static_cast<std::int64_t>(limit.rlim_cur);
  const std::int64_t reserve = std::max<std::int64_t>(64, files / 10);
  const std::int64_t within = std::max<std::int64_t>(1, files - reserve);
  if (configured > 0 && configured <= within) return static_cast<std::size_t>(configured);
  if (configured > 0) {
    // Info, not a warning: the default (100000) is above many hosts' limit, and this is expected.
    spdlog::info(
        "max_connections {} lowered to {} to fit the open-file limit {} (`ulimit -n` raises it)",
        configured, within, files);
  }
  return static_cast<std::size_t>(within);
}

}  // namespace

int RunServe(const Config& config) {
  SetUpLogging(config.log_level);
  const bool cluster = config.mode == "cluster";
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
  api_options.token_secrets = EffectiveTokenSecrets(config);
  api_options.rate_limit_per_s = config.rate_limit_per_user;
  api_options.rate_limit_burst = config.rate_limit_burst;
  service::ServiceOptions service_options;
  service_options.limits = config.limits;
  service_options.sweep_interval = std::chrono::milliseconds(config.sweep_interval_ms);

  // Exactly one backend. Its parts are made once it has started (the store needs its bus); the
  // Redis store also runs on the server's I/O loops (no thread of its own, no hop between an
  // HTTP request and its Redis command), which exist only once the server has started.
  std::unique_ptr<EmbeddedBackend> embedded;
  std::unique_ptr<ClusterBackend> clustered;
  auto io_contexts = std::make_shared<std::vector<boost::asio::io_context*>>();
  std::unique_ptr<service::RedPacketService> service;
  try {
    if (cluster) {
      clustered = std::make_unique<ClusterBackend>(ClusterOptionsFrom(config));
      clustered->Start();
      service = std::make_unique<service::RedPacketService>(
          service_options, clustered->MakeServiceParts(io_contexts));
    } else {
      EmbeddedOptions embedded_options;
      embedded_options.data_dir = config.data_dir;
      embedded_options.journal_name = config.journal_name;
      embedded_options.journal_gather = std::chrono::microseconds(config.journal_gather_us);
      embedded_options.journal_on_loop = config.journal_writer == "loop";
      embedded = std::make_unique<EmbeddedBackend>(embedded_options);
      embedded->Start();
      service = std::make_unique<service::RedPacketService>(service_options,
                                                            embedded->MakeServiceParts());
    }
  } catch (const std::exception& error) {
    spdlog::critical("startup failed: {}", error.what());
    return 1;
  }
  http::Api api(api_options, *service);
  http::PacketEventsOptions events_options;
  events_options.max_streams = static_cast<std::size_t>(config.event_streams_max);
  events_options.poll_interval = std::chrono::milliseconds(config.event_poll_ms);
  // Declared before the server: it outlives it (streams end when the server stops).
  http::PacketEvents events(events_options, *service);
  api.SetPacketEvents(&events);
  if (clustered) clustered->AddMetrics(api.metrics());
  if (embedded) embedded->AddMetrics(api.metrics());

  http::ServerOptions server_options;
  server_options.host = config.host;
  server_options.port = config.port;
  server_options.threads =
      config.threads > 0 ? config.threads
                         : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  server_options.idle_timeout = std::chrono::milliseconds(config.idle_timeout_ms);
  server_options.header_timeout = std::chrono::milliseconds(config.header_timeout_ms);
  server_options.max_connections = ConnectionCapWithinFileLimit(config.max_connections);
  server_options.max_connections_per_ip = static_cast<std::size_t>(config.max_connections_per_ip);
  server_options.stream_buffer_limit = static_cast<std::size_t>(config.event_stream_buffer_bytes);
  http::Server server(server_options, api);
  try {
    server.Start();
  } catch (const std::exception& error) {
    spdlog::critical("{}", error.what());
    return 1;
  }
  api.WatchServer(server);
  *io_contexts = server.io_contexts();
  // The first I/O thread writes the journal (the one thread of the pinned benchmark: no hop).
  if (embedded) embedded->AttachLoop(*io_contexts->front());
  if (cluster) {
    spdlog::info(
        "listening on http://{}:{} mode=cluster threads={} dev={} redis={} kafka={} "
        "mariadb_primary={} mariadb_replica={}",
        config.host, server.port(), server_options.threads, config.dev, config.redis_nodes,
        config.kafka_brokers, config.mariadb_primary, config.mariadb_replica);
  } else {
    spdlog::info("listening on http://{}:{} mode=embedded threads={} dev={} data_dir={}",
                 config.host, server.port(), server_options.threads, config.dev, config.data_dir);
  }
  spdlog::info(
      "limits: rate_limit_per_user={} rate_limit_burst={} header_timeout_ms={} max_connections={} "
      "max_connections_per_ip={} (0 = off)",
      config.rate_limit_per_user, config.rate_limit_burst, config.header_timeout_ms,
      server_options.max_connections, server_options.max_connections_per_ip);
  try {
    // /readyz answers 503 (saying why) until this returns.
    if (embedded) embedded->CatchUp();
    service->Start();
  } catch (const std::exception& error) {
    spdlog::critical("startup failed: {}", error.what());
    server.Stop(std::chrono::milliseconds(0));
    if (embedded) embedded->Stop();  // before the server (and the journal's loop) is destroyed
    return 1;
  }
  events.Start();
  spdlog::info("ready");
  if (config.dev) PrintDevExample(config, server.port());

  int signal_number = 0;
  sigwait(&signals, &signal_number);
  spdlog::info("received {}, draining", signal_number == SIGTERM ? "SIGTERM" : "SIGINT");
  // Order: the sweeper ends first, while the loops still deliver its Redis replies (afterwards
  // a cluster sweep would wait out its timeout); the server stops taking requests, answers what
  // it has (their bus acks arrive meanwhile) and stops its io_contexts. Embedded: the journal
  // flushes and the worker applies all of it, then the service stops. Cluster: the service
  // destroys the Redis store (it must not outlive the loops' owner nor go while they run), then
  // the backend flushes Kafka and releases the sweeper lease.
  service->StopSweeper();
  events.Stop();  // ends the streams, so the server's drain does not wait for them
  server.Stop(std::chrono::milliseconds(config.shutdown_grace_ms));
  if (embedded) embedded->Stop();
  if (clustered) clustered->StopRelay();  // it removes from the store's outbox: before the store
  service->Stop();
  if (clustered) clustered->Stop();
  spdlog::info("stopped cleanly");
  return 0;
}

}  // namespace redpacket::app
