// `redpacket serve`: the parts of the chosen mode wired as one ComponentList (started in order,
// stopped in reverse), signals and graceful shutdown.
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
#include "app/components.h"
#include "app/embedded_backend.h"
#include "app/lease_work.h"
#include "app/store_component.h"
#include "http/events/packet_events.h"
#include "http/handlers/api.h"
#include "http/transport/server.h"
#include "lease/redis/redis_lease.h"
#include "store/memory/memory_store.h"
#include "sweeper/sweeper.h"

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

// Embedded mode: a finished packet stays in memory this long after its events are applied
// (its page and late grabs answer from memory; afterwards from the ledger).
constexpr std::chrono::milliseconds kFinishedRetention{60000};

void LogListening(const Config& config, const http::Server& server, int threads) {
  if (config.mode == "cluster") {
    spdlog::info(
        "listening on http://{}:{} mode=cluster threads={} dev={} redis={} kafka={} "
        "mariadb_primary={} mariadb_replica={}",
        config.host, server.port(), threads, config.dev, config.redis_nodes, config.kafka_brokers,
        config.mariadb_primary, config.mariadb_replica);
  } else {
    spdlog::info("listening on http://{}:{} mode=embedded threads={} dev={} data_dir={}",
                 config.host, server.port(), threads, config.dev, config.data_dir);
  }
}

http::ServerOptions ServerOptionsFrom(const Config& config) {
  http::ServerOptions options;
  options.host = config.host;
  options.port = config.port;
  options.threads = config.threads > 0
                        ? config.threads
                        : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  options.idle_timeout = std::chrono::milliseconds(config.idle_timeout_ms);
  options.header_timeout = std::chrono::milliseconds(config.header_timeout_ms);
  options.max_connections = ConnectionCapWithinFileLimit(config.max_connections);
  options.max_connections_per_ip = static_cast<std::size_t>(config.max_connections_per_ip);
  options.stream_buffer_limit = static_cast<std::size_t>(config.event_stream_buffer_bytes);
  return options;
}

EmbeddedOptions EmbeddedOptionsFrom(const Config& config) {
  EmbeddedOptions options;
  options.data_dir = config.data_dir;
  options.journal_name = config.journal_name;
  options.journal_gather = std::chrono::microseconds(config.journal_gather_us);
  options.journal_on_loop = config.journal_writer == "loop";
  return options;
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

  // Every part is made here; none does I/O before parts.StartAll(). The components are owned
  // by `parts`, declared after the server: the list stops them and destroys them (the Redis
  // store, whose sockets live on the server's loops) before the server goes.
  std::vector<boost::asio::io_context*> io_contexts;  // the server's loops, once it started
  std::unique_ptr<EmbeddedBackend> embedded_part;
  std::unique_ptr<ClusterBackend> cluster_part;
  std::unique_ptr<RelayComponent> relay_part;
  std::unique_ptr<RedisStoreComponent> redis_part;
  std::unique_ptr<StoreComponent<store::PacketStore>> memory_part;
  // The parts by name, valid while `parts` holds them.
  EmbeddedBackend* embedded = nullptr;
  ClusterBackend* clustered = nullptr;
  RedisStoreComponent* redis_store = nullptr;
  RelayComponent* relay = nullptr;
  store::PacketStore* store = nullptr;
  service::ServiceDeps deps;
  if (cluster) {
    cluster_part = std::make_unique<ClusterBackend>(ClusterOptionsFrom(config));
    ClusterBackend& backend = *cluster_part;
    clustered = &backend;
    relay_part = std::make_unique<RelayComponent>(
        backend, [&redis_store]() -> store::Outbox& { return redis_store->engine(); });
    relay = relay_part.get();
    redis_part = MakeRedisStoreComponent(
        backend.options(), [&io_contexts] { return io_contexts; }, *relay);
    redis_store = redis_part.get();
    store = redis_store;
    deps.open_writer = [&backend] { return backend.OpenWriter(); };
    deps.open_reader = [&backend] { return backend.OpenReader(); };
    deps.store_kind = service::StoreKind::kKeepsPackets;
    deps.checks = &backend;
  } else {
    embedded_part = std::make_unique<EmbeddedBackend>(EmbeddedOptionsFrom(config));
    EmbeddedBackend& backend = *embedded_part;
    embedded = &backend;
    memory_part = std::make_unique<StoreComponent<store::PacketStore>>("memory store", [&backend] {
      return store::MakeMemoryStore(backend.sink(), backend.clock());
    });
    store = memory_part.get();
    deps.open_writer = [&backend] { return backend.OpenLedger(); };
    deps.open_reader = [&backend] { return backend.OpenLedger(); };
    deps.store_kind = service::StoreKind::kRebuiltFromLedger;
    deps.pending = &backend.pending();
    deps.checks = &backend;
  }
  const domain::TimeSource& clock = embedded != nullptr ? embedded->clock() : clustered->clock();
  deps.clock = &clock;
  deps.store = store;
  service::ServiceOptions service_options;
  service_options.limits = config.limits;
  service::RedPacketService service(service_options, std::move(deps));

  http::Api api(ApiOptionsFrom(config, clock), service);
  http::PacketEventsOptions events_options;
  events_options.max_streams = static_cast<std::size_t>(config.event_streams_max);
  events_options.poll_interval = std::chrono::milliseconds(config.event_poll_ms);
  http::PacketEvents events(events_options, service);
  api.SetPacketEvents(&events);
  const http::ServerOptions server_options = ServerOptionsFrom(config);
  http::Server server(server_options, api);

  // The sweep of the mode: embedded, the memory store's; cluster, fenced by the sweeper lease.
  std::unique_ptr<sweeper::SweepPolicy> sweep_policy;
  std::unique_ptr<LeaseHolder> lease_part;
  if (cluster) {
    const ClusterOptions& options = clustered->options();
    lease_part = std::make_unique<LeaseHolder>(
        std::make_unique<lease::RedisLease>(options.redis_seeds, "sweeper"), options.server_name,
        options.lease_ttl);
    sweep_policy = std::make_unique<ClusterSweep>(*lease_part, *redis_store);
  } else {
    sweep_policy = std::make_unique<EmbeddedSweep>(*store, *embedded, kFinishedRetention);
  }
  auto sweeper = std::make_unique<sweeper::Sweeper>(
      *sweep_policy, clock,
      sweeper::SweeperOptions{std::chrono::milliseconds(config.sweep_interval_ms)});
  api.metrics().AddCounter(
      "redpacket_packets_expired_total", "Packets this server's sweeper closed at expiry", {},
      [&sweeper = *sweeper] { return static_cast<double>(sweeper.expired()); });

  // The start order; each stops in the reverse order. The server answers from its start
  // (/readyz: 503 and why until the service is ready); it drains before anything that serves
  // a request stops, and its loops stop after every part that talks to Redis through them.
  ComponentList parts;
  if (cluster) {
    parts.Add(std::move(cluster_part)).AddMetrics(api.metrics());
  } else {
    parts.Add(std::move(embedded_part)).AddMetrics(api.metrics());
  }
  parts.Add(std::make_unique<Step>(
      "http server",
      [&] {
        server.Start();
        api.WatchServer(server);
        io_contexts = server.io_contexts();
        LogListening(config, server, server_options.threads);
      },
      [&server] { server.Stop(std::chrono::milliseconds(0)); }));
  if (cluster) {
    parts.Add(std::move(redis_part));
  } else {
    parts.Add(std::move(memory_part));
    // The journal written from the first I/O loop (the one thread of the pinned benchmark: no
    // hop); then what it held beyond the ledger is applied before the service rebuilds from it.
    parts.Add(std::make_unique<Step>("journal catch-up", [embedded, &io_contexts] {
      embedded->AttachLoop(*io_contexts.front());
      embedded->CatchUp();
    }));
  }
  parts.Add(std::make_unique<Step>(
      "service", [&service] { service.Start(); }, [&service] { service.Stop(); }));
  LeaseHolder* lease = nullptr;
  if (cluster) {
    parts.Add(std::move(relay_part)).AddMetrics(api.metrics());
    lease = &parts.Add(std::move(lease_part));
  }
  parts.Add(std::make_unique<Owned<sweeper::Sweeper>>("sweeper", std::move(sweeper)));
  if (cluster) {
    parts.Add(std::make_unique<LeaseWork>(*clustered, *lease, *redis_store, *relay))
        .AddMetrics(api.metrics());
  }
  parts.Add(std::make_unique<Step>("http drain", nullptr, [&server, &config] {
    server.Drain(std::chrono::milliseconds(config.shutdown_grace_ms));
  }));
  // Last: its streams end first, so the server's drain does not wait for them.
  parts.Add(std::make_unique<Step>(
      "live events", [&events] { events.Start(); }, [&events] { events.Stop(); }));

  spdlog::info(
      "limits: rate_limit_per_user={} rate_limit_burst={} header_timeout_ms={} max_connections={} "
      "max_connections_per_ip={} (0 = off)",
      config.rate_limit_per_user, config.rate_limit_burst, config.header_timeout_ms,
      server_options.max_connections, server_options.max_connections_per_ip);
  try {
    parts.StartAll();
  } catch (const std::exception& error) {
    spdlog::critical("startup failed: {}", error.what());
    return 1;
  }
  spdlog::info("ready");
  if (config.dev) PrintDevExample(config, server.port());

  int signal_number = 0;
  sigwait(&signals, &signal_number);
  spdlog::info("received {}, draining", signal_number == SIGTERM ? "SIGTERM" : "SIGINT");
  parts.StopAll();
  spdlog::info("stopped cleanly");
  return 0;
}

}  // namespace redpacket::app
