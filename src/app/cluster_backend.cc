// ClusterBackend (Kafka, MariaDB, health), the Redis store and the relay as components.
#include "app/cluster_backend.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <future>
#include <stdexcept>

#include "lease/redis/redis_lease.h"
#include "store/redis/redis_store.h"

namespace redpacket::app {
namespace {

// How long start-up waits for the Redis Cluster's slot map and for Kafka before giving up.
constexpr std::chrono::seconds kConnectWait{5};
constexpr std::chrono::seconds kHealthInterval{2};

// The store on the server's I/O loops; blocks until every client has the slot map. Throws
// std::runtime_error "cannot reach Redis at <nodes>: ..." when it cannot.
std::unique_ptr<store::redis::RedisStore> ConnectRedisStore(
    const std::vector<boost::asio::io_context*>& io_contexts,
    std::vector<net::redis::Endpoint> seeds, const std::string& nodes,
    store::redis::RedisStoreOptions options) {
  auto store =
      std::make_unique<store::redis::RedisStore>(io_contexts, std::move(seeds), std::move(options));
  // Shared: after a timeout the store (and this frame) is gone when the answer comes.
  auto connected = std::make_shared<std::promise<domain::Status>>();
  auto answer = connected->get_future();
  store->Connect([connected](domain::Status status) { connected->set_value(std::move(status)); });
  if (answer.wait_for(kConnectWait) != std::future_status::ready) {
    throw std::runtime_error(fmt::format("cannot reach Redis at {}: no slot map within {} s", nodes,
                                         kConnectWait.count()));
  }
  if (domain::Status status = answer.get(); !status) {
    throw std::runtime_error(
        fmt::format("cannot reach Redis at {}: {}", nodes, status.error().message));
  }
  return store;
}

}  // namespace

ClusterBackend::ClusterBackend(ClusterOptions options) : options_(std::move(options)) {
  options_.primary.clock = options_.clock;
  if (options_.replica) options_.replica->clock = options_.clock;
}

ClusterBackend::~ClusterBackend() { Stop(); }

void ClusterBackend::Start() {
  // Fail fast with the address that is wrong: the primary first (every write), then Kafka.
  ledger::OpenMariaDbLedger(options_.primary);
  sink_ = bus::KafkaSink::Connect(options_.kafka, kConnectWait);
  if (options_.replica) {
    health_replica_ = std::make_unique<ledger::ReplicaLagProbe>(*options_.replica);
  }
  CheckDependencies();  // /readyz tells the truth from the first request
  health_ = std::make_unique<threads::TaskThread>(
      threads::TaskThread::Options{.name = "rp-health", .period = kHealthInterval},
      [this] { CheckDependencies(); });
  health_->Start();
  started_ = true;
}

std::unique_ptr<ledger::Ledger> ClusterBackend::OpenWriter() const {
  return ledger::OpenMariaDbLedger(options_.primary);
}

std::unique_ptr<ledger::Ledger> ClusterBackend::OpenReader() const {
  std::unique_ptr<ledger::Ledger> replica;
  std::function<std::unique_ptr<ledger::Ledger>()> open_replica;
  ledger::ReadRouter::LagProbe lag;
  if (options_.replica) {
    const ledger::MariaDbOptions replica_options = *options_.replica;
    open_replica = [replica_options] { return ledger::OpenMariaDbLedger(replica_options); };
    try {
      replica = open_replica();
    } catch (const std::exception& error) {
      spdlog::warn("the MariaDB replica is unreachable, reads go to the primary: {}", error.what());
    }
    auto probe = std::make_shared<ledger::ReplicaLagProbe>(replica_options);
    lag = [probe] { return probe->LagSeconds(); };
  }
  return std::make_unique<ledger::ReadRouter>(
      ledger::OpenMariaDbLedger(options_.primary), std::move(replica), std::move(lag),
      std::move(open_replica), options_.read_routing, read_stats_);
}

std::unique_ptr<RedisStoreComponent> MakeRedisStoreComponent(
    const ClusterOptions& options,
    std::function<std::vector<boost::asio::io_context*>()> io_contexts, RelayComponent& relay) {
  return std::make_unique<RedisStoreComponent>(
      "redis store", [&options, io_contexts = std::move(io_contexts), &relay] {
        store::redis::RedisStoreOptions store_options;
        store_options.clock = options.clock;
        // Decided and replicated: published at once (the relay's fast path).
        store_options.on_recorded = [&relay](store::OutboxEntry entry) {
          relay.Hand(std::move(entry));
        };
        return ConnectRedisStore(io_contexts(), options.redis_seeds, options.redis_nodes,
                                 std::move(store_options));
      });
}

void RelayComponent::Start() {
  relay_ = std::make_unique<relay::OutboxRelay>(backend_.sink(), backend_.options().relay);
  relay_->Start(outbox_());
  live_.store(relay_.get());
}

void RelayComponent::Stop() {
  live_.store(nullptr);
  relay_->Stop();
}

void RelayComponent::Hand(store::OutboxEntry entry) {
  if (relay::OutboxRelay* relay = live_.load()) relay->Hand(std::move(entry));
}

// Each dependency once, blocking (about 2 s at worst: Kafka's metadata timeout).
void ClusterBackend::CheckDependencies() {
  std::map<std::string, std::string> checks;
  domain::Status kafka = sink_->CheckHealth(std::chrono::milliseconds(1500));
  checks["kafka"] = kafka.ok() ? "ok" : kafka.error().message;
  try {
    if (!health_primary_) health_primary_ = ledger::OpenMariaDbLedger(options_.primary);
    auto offsets = health_primary_->AppliedOffsets();
    // A connection lost since the last check (a restart) fails once; the next call reconnects.
    if (!offsets.ok()) offsets = health_primary_->AppliedOffsets();
    checks["mariadb_primary"] = offsets.ok() ? "ok" : offsets.error().message;
  } catch (const std::exception& error) {
    checks["mariadb_primary"] = error.what();
  }
  if (health_replica_) {
    auto lag = health_replica_->LagSeconds();
    if (!lag.ok()) {
      checks["mariadb_replica"] = lag.error().message;
    } else if (!lag->has_value()) {
      checks["mariadb_replica"] = "not replicating";
    } else {
      read_stats_->replica_lag_seconds = **lag;
      checks["mariadb_replica"] = **lag <= options_.read_routing.max_lag.count()
                                      ? "ok"
                                      : fmt::format("{} s behind: reads go to the primary", **lag);
    }
  }
  std::lock_guard lock(checks_mutex_);
  checks_ = std::move(checks);
}

std::map<std::string, std::string> ClusterBackend::Checks() const {
  std::lock_guard lock(checks_mutex_);
  return checks_;
}

void ClusterBackend::Stop() {
  if (!started_) return;
  started_ = false;
  health_->Stop();
  // Settles every publish (the relay's callbacks run now).
  sink_->Close();
}

void ClusterBackend::AddMetrics(http::Metrics& metrics) {
  metrics.AddGauge("redpacket_kafka_pending_events",
                   "Events sent to Kafka by the relay and not yet acknowledged",
                   [this] { return sink_ ? static_cast<double>(sink_->pending()) : 0.0; });
  metrics.AddGauge("redpacket_mariadb_replica_lag_seconds",
                   "Seconds the MariaDB replica is behind its primary (-1: unknown or down)",
                   [this] { return static_cast<double>(read_stats_->replica_lag_seconds.load()); });
  metrics.AddGauge("redpacket_reads_on_replica_total", "Ledger reads served by the replica",
                   [this] { return static_cast<double>(read_stats_->reads_on_replica.load()); });
  metrics.AddGauge("redpacket_reads_on_primary_total",
                   "Ledger reads served by the primary (the replica down, lagging or unsure)",
                   [this] { return static_cast<double>(read_stats_->reads_on_primary.load()); });
  for (const char* dependency : {"kafka", "mariadb_primary", "mariadb_replica"}) {
    metrics.AddGauge(std::string("redpacket_dependency_") + dependency + "_up",
                     fmt::format("1 when {} answered the last health check", dependency),
                     [this, name = std::string(dependency)] {
                       auto checks = Checks();
                       auto it = checks.find(name);
                       return it != checks.end() && it->second == "ok" ? 1.0 : 0.0;
                     });
  }
}

void RelayComponent::AddMetrics(http::Metrics& metrics) {
  auto stat = [this](auto read) {
    return [this, read] {
      relay::OutboxRelay* relay = live_.load();
      return relay != nullptr ? static_cast<double>(read(relay->stats())) : 0.0;
    };
  };
  metrics.AddGauge("redpacket_relay_handed_total",
                   "Grab and refund events handed to the relay once recorded and replicated",
                   stat([](const relay::RelayStats& s) { return s.handed; }));
  metrics.AddGauge("redpacket_relay_acknowledged_total",
                   "Outbox events published and acknowledged by Kafka (both paths)",
                   stat([](const relay::RelayStats& s) { return s.acknowledged; }));
  metrics.AddGauge("redpacket_relay_failed_total",
                   "Outbox events Kafka did not acknowledge (left in the outbox, published later)",
                   stat([](const relay::RelayStats& s) { return s.failed; }));
  metrics.AddGauge("redpacket_relay_dropped_total",
                   "Events handed while too many were in flight (left in the outbox)",
                   stat([](const relay::RelayStats& s) { return s.dropped; }));
  metrics.AddGauge("redpacket_relay_recovered_total",
                   "Outbox entries claimed by the recovery (older than outbox_claim_age_ms)",
                   stat([](const relay::RelayStats& s) { return s.recovered; }));
  metrics.AddGauge("redpacket_relay_in_flight_events",
                   "Outbox events published and not yet acknowledged",
                   stat([](const relay::RelayStats& s) { return s.in_flight; }));
}

}  // namespace redpacket::app
