// `redpacket worker`: the cluster's Kafka consumer group member that applies grab and refund
// events to the MariaDB primary (the embedded server runs the same worker on its journal).
// Serves /healthz, /readyz and /metrics; SIGTERM finishes the batch in hand, commits, exits 0.
#include <fmt/format.h>
#include <pthread.h>
#include <signal.h>
#include <spdlog/spdlog.h>

#include <memory>

#include "app/cluster_config.h"
#include "app/commands.h"
#include "applier/applier.h"
#include "bus/kafka/kafka_source.h"
#include "http/ops/metrics.h"
#include "http/ops/ops_handler.h"
#include "http/transport/server.h"
#include "ledger/mariadb/mariadb_ledger.h"

namespace redpacket::app {
namespace {

constexpr std::chrono::seconds kConnectWait{10};

void AddWorkerMetrics(http::Metrics& metrics, const applier::Applier& worker) {
  auto stat = [&worker](auto field) {
    return [&worker, field] { return static_cast<double>(worker.stats().*field); };
  };
  metrics.AddGauge("redpacket_worker_applied_events_total",
                   "Events applied to the ledger (redeliveries included; each credits once)",
                   stat(&applier::ApplierStats::applied_events));
  metrics.AddGauge("redpacket_worker_dead_lettered_total",
                   "Events set aside (the ledger's dead_letters table, copied to the dead-letter "
                   "topic) with their reason",
                   stat(&applier::ApplierStats::dead_lettered));
  metrics.AddGauge("redpacket_worker_commits_dropped_total",
                   "Offset commits dropped because the consumer group had moved on",
                   stat(&applier::ApplierStats::commits_dropped));
  metrics.AddGauge("redpacket_applier_stalled",
                   "1 while the ledger cannot write and the worker retries (nothing is applied)",
                   [&worker] { return worker.stall() ? 1.0 : 0.0; });
  metrics.AddGauge("redpacket_worker_batches_total", "Ledger transactions committed",
                   stat(&applier::ApplierStats::batches));
  metrics.AddGauge("redpacket_worker_retries_total", "Transient failures retried with backoff",
                   stat(&applier::ApplierStats::retries));
  metrics.AddGauge("redpacket_worker_credit_latency_p50_seconds",
                   "Grab to credit (the grab's time to the ledger commit), median of the last 4096",
                   [&worker] { return worker.stats().credit_latency_p50.count() / 1000.0; });
  metrics.AddGauge("redpacket_worker_credit_latency_p99_seconds",
                   "Grab to credit, 99th percentile of the last 4096 grabs applied",
                   [&worker] { return worker.stats().credit_latency_p99.count() / 1000.0; });
  metrics.AddGauge("redpacket_worker_lag_events",
                   "Events in the topic not yet consumed by this group member (-1: unknown)",
                   [&worker] {
                     const auto lag = worker.stats().lag;
                     return lag ? static_cast<double>(*lag) : -1.0;
                   });
}

}  // namespace

int RunWorker(const Config& config) {
  SetUpLogging(config.log_level);
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  std::unique_ptr<ledger::Ledger> ledger;
  std::unique_ptr<bus::KafkaSource> source;
  try {
    ledger = ledger::OpenMariaDbLedger(MariaDbPrimaryFrom(config));
    if (auto migrated = ledger->Migrate(); !migrated) {
      throw std::runtime_error("cannot migrate the ledger: " + migrated.error().message);
    }
    source = bus::KafkaSource::Connect(KafkaSourceFrom(config), kConnectWait);
  } catch (const std::exception& error) {
    spdlog::critical("startup failed: {}", error.what());
    return 1;
  }

  applier::ApplierOptions options;
  options.name = "rp-worker";
  options.max_batch_events = static_cast<std::size_t>(config.worker_batch);
  // A poll returns with the first message that arrives: waiting longer adds no latency, and an
  // idle worker wakes 10 times a second instead of 200 (measured: 10% of a CPU while idle).
  options.poll_wait = std::chrono::milliseconds(100);
  // A poll takes what has arrived; a short pause after a partial batch lets the next one fill
  // (fewer, larger transactions: each costs the primary a commit and Kafka an offset commit).
  options.batch_interval = std::chrono::milliseconds(2);
  options.clock = &domain::SystemTime();
  applier::Applier worker(*source, *ledger, options);

  http::Metrics metrics({"ops"});
  AddWorkerMetrics(metrics, worker);
  http::OpsHandler ops(metrics, [&worker] {
    // The worker retries what fails; not ready while the ledger fails every write.
    std::map<std::string, std::string> checks{{"worker", "ok"}};
    if (const auto stall = worker.stall()) {
      checks["worker"] = fmt::format("applier stalled since {}: {}",
                                     domain::FormatTime(stall->since), stall->reason);
    }
    return checks;
  });
  http::ServerOptions server_options;
  server_options.host = config.host;
  server_options.port = config.port;
  server_options.threads = 1;
  http::Server server(server_options, ops);
  try {
    server.Start();
  } catch (const std::exception& error) {
    spdlog::critical("{}", error.what());
    return 1;
  }
  worker.Start();
  spdlog::info("listening on http://{}:{} (/healthz, /readyz, /metrics)", config.host,
               server.port());
  spdlog::info("worker ready: kafka={} topic={} group={} mariadb_primary={} batch={}",
               config.kafka_brokers, config.kafka_topic, config.kafka_group, config.mariadb_primary,
               config.worker_batch);

  int signal_number = 0;
  sigwait(&signals, &signal_number);
  spdlog::info("received {}, finishing the batch in hand",
               signal_number == SIGTERM ? "SIGTERM" : "SIGINT");
  worker.Stop();
  server.Stop(std::chrono::milliseconds(1000));
  const applier::ApplierStats stats = worker.stats();
  spdlog::info("worker stopped cleanly: {} events applied in {} batches, {} dead-lettered",
               stats.applied_events, stats.batches, stats.dead_lettered);
  return 0;
}

}  // namespace redpacket::app
