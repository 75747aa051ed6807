// ClusterBackend: Kafka, MariaDB, the Redis store, the sweeper lease, the reconciler, health.
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

ClusterBackend::ClusterBackend(ClusterOptions options) : options_(std::move(options)) {}

ClusterBackend::~ClusterBackend() { Stop(); }

void ClusterBackend::Start() {
  // Fail fast with the address that is wrong: the primary first (every write), then Kafka.
  ledger::OpenMariaDbLedger(options_.primary);
  sink_ = bus::KafkaSink::Connect(options_.kafka, kConnectWait);
  relay_ = std::make_unique<relay::OutboxRelay>(*sink_, options_.relay);
  lease_ = std::make_unique<lease::RedisLease>(options_.redis_seeds, "sweeper");
  if (options_.replica) {
    health_replica_ = std::make_unique<ledger::ReplicaLagProbe>(*options_.replica);
  }
  CheckDependencies();  // /readyz tells the truth from the first request
  health_stop_ = false;
  health_thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "rp-health");
    HealthLoop();
  });
  started_ = true;
}

service::ServiceParts ClusterBackend::MakeServiceParts(
    std::shared_ptr<std::vector<boost::asio::io_context*>> io_contexts) {
  service::ServiceParts parts;
  parts.writer = ledger::OpenMariaDbLedger(options_.primary);
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
  parts.reader = std::make_unique<ledger::ReadRouter>(
      ledger::OpenMariaDbLedger(options_.primary), std::move(replica), std::move(lag),
      std::move(open_replica), options_.read_routing, read_stats_);
  parts.store_factory = [this, io_contexts] {
    store::redis::RedisStoreOptions store_options;
    // Decided and replicated: published at once (the relay's fast path).
    store_options.on_recorded = [relay = relay_.get()](store::OutboxEntry entry) {
      relay->Hand(std::move(entry));
    };
    auto store = ConnectRedisStore(*io_contexts, options_.redis_seeds, options_.redis_nodes,
                                   std::move(store_options));
    redis_store_ = store.get();
    relay_->Start(*store);
    return std::unique_ptr<store::PacketStore>(std::move(store));
  };
  parts.store_keeps_packets = true;
  // The Redis store still reads the system clock for its own cache and snapshot decisions.
  parts.clock = &domain::SystemTime();
  parts.sweep = [this](domain::TimePoint now) { return Sweep(now); };
  parts.dependency_checks = [this] { return Checks(); };
  parts.after_sweep = [this](store::PacketStore& store) { AfterSweep(store); };
  return parts;
}

// Sweeper thread. Redis decides each close and refund once whoever sweeps; the lease keeps the
// servers from doing the same work at the same time, and the reconciler from racing itself.
std::optional<std::uint64_t> ClusterBackend::HoldLease() {
  auto token = lease_->TryAcquire(options_.server_name, options_.lease_ttl);
  const std::uint64_t before = lease_token_.load();
  if (!token.ok() || !token->has_value()) {
    if (before != 0) spdlog::info("sweeper lease lost: another server sweeps");
    if (!token.ok()) spdlog::warn("sweeper lease: {}", token.error().message);
    lease_token_ = 0;
    return std::nullopt;
  }
  if (before != **token) {
    spdlog::info("sweeper lease taken: this server sweeps (fencing token {})", **token);
  }
  lease_token_ = **token;
  return **token;
}

// A sweep fenced by the token: a holder that stalled past its lease and woke up after another
// server took over is refused by Redis, batch by batch. Packets it found lost go to the loader.
std::optional<store::SweepStats> ClusterBackend::Sweep(domain::TimePoint now) {
  const std::optional<std::uint64_t> token = HoldLease();
  if (!token || redis_store_ == nullptr) return std::nullopt;
  auto swept = redis_store_->FencedSweep(now, *token);
  if (!swept) {
    spdlog::warn("sweeper: {}", swept.error().message);
    return std::nullopt;
  }
  if (!swept->lost.empty()) {
    spdlog::warn("sweeper: {} expired packets have lost their keys; the loader restores them",
                 swept->lost.size());
    if (EnsureSweeperParts()) loader_->Lost(swept->lost);
  }
  return *swept;
}

bool ClusterBackend::EnsureSweeperParts() {
  try {
    if (!sweeper_ledger_) sweeper_ledger_ = ledger::OpenMariaDbLedger(options_.primary);
  } catch (const std::exception& error) {
    spdlog::warn("sweeper: {}", error.what());
    return false;
  }
  if (!loader_) {
    loader_ = std::make_unique<loader::PacketLoader>(*redis_store_, *redis_store_, *redis_store_,
                                                     *sweeper_ledger_, *sink_, options_.loader);
  }
  if (!reconciler_) {
    reconciler_ = std::make_unique<reconciler::Reconciler>(*redis_store_, *sweeper_ledger_,
                                                           options_.reconcile);
  }
  return true;
}

// After each sweep of the lease holder: the relay's recovery (what no fast path published), the
// loader (creations left unloaded, lost packets), and now and then the check.
void ClusterBackend::AfterSweep(store::PacketStore& /*store*/) {
  if (redis_store_ == nullptr) return;
  const auto now = std::chrono::steady_clock::now();
  if (now >= next_recovery_) {
    next_recovery_ = now + options_.recovery_interval;
    auto recovered = relay_->RecoverOnce();
    if (!recovered) spdlog::warn("relay recovery: {}", recovered.error().message);
  }
  if (!EnsureSweeperParts()) return;
  auto loaded = loader_->RunOnce();
  if (!loaded) {
    // A lost connection fails this pass; the ledger reconnects on the next call.
    spdlog::warn("loader: {}", loaded.error().message);
  } else {
    packets_restored_ += loaded->restored;
    packets_loaded_ += loaded->loaded;
    packets_waiting_restore_ = loaded->waiting;
  }
  if (now < next_reconcile_) return;
  next_reconcile_ = now + options_.reconcile_interval;
  auto checked = reconciler_->RunOnce();
  if (!checked) {
    spdlog::warn("check: {}", checked.error().message);
    return;
  }
  packets_lost_seen_ = checked->packets_lost;
  grabs_behind_ = static_cast<std::uint64_t>(checked->grabs_behind);
  if (checked->packets_lost || checked->failures) {
    spdlog::info(
        "check: {} unfinished packets, {} lost, {} with {} grabs not yet applied, {} failures",
        checked->packets_checked, checked->packets_lost, checked->packets_behind,
        checked->grabs_behind, checked->failures);
  }
}

void ClusterBackend::HealthLoop() {
  std::unique_lock lock(health_mutex_);
  while (!health_stop_) {
    health_wake_.wait_for(lock, kHealthInterval);
    if (health_stop_) break;
    lock.unlock();
    CheckDependencies();
    lock.lock();
  }
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
  std::lock_guard lock(health_mutex_);
  checks_ = std::move(checks);
}

std::map<std::string, std::string> ClusterBackend::Checks() const {
  std::lock_guard lock(health_mutex_);
  return checks_;
}

void ClusterBackend::StopRelay() {
  if (relay_) relay_->Stop();
}

void ClusterBackend::Stop() {
  if (!started_) return;
  started_ = false;
  {
    std::lock_guard lock(health_mutex_);
    health_stop_ = true;
  }
  health_wake_.notify_all();
  if (health_thread_.joinable()) health_thread_.join();
  if (lease_token_.load() != 0) {
    if (auto released = lease_->Release(options_.server_name); !released) {
      spdlog::warn("releasing the sweeper lease: {}", released.error().message);
    }
  }
  lease_.reset();
  relay_->Stop();
  // Settles every publish (the relay's callbacks run now); the relay goes with the backend.
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
  metrics.AddGauge("redpacket_sweeper_lease_token",
                   "Fencing token of the sweeper lease this server holds (0: none)",
                   [this] { return static_cast<double>(lease_token_.load()); });
  auto relay_stat = [this](auto read) {
    return [this, read] { return static_cast<double>(read(relay_->stats())); };
  };
  metrics.AddGauge("redpacket_relay_handed_total",
                   "Grab and refund events handed to the relay once recorded and replicated",
                   relay_stat([](const relay::RelayStats& s) { return s.handed; }));
  metrics.AddGauge("redpacket_relay_acknowledged_total",
                   "Outbox events published and acknowledged by Kafka (both paths)",
                   relay_stat([](const relay::RelayStats& s) { return s.acknowledged; }));
  metrics.AddGauge("redpacket_relay_failed_total",
                   "Outbox events Kafka did not acknowledge (left in the outbox, published later)",
                   relay_stat([](const relay::RelayStats& s) { return s.failed; }));
  metrics.AddGauge("redpacket_relay_dropped_total",
                   "Events handed while too many were in flight (left in the outbox)",
                   relay_stat([](const relay::RelayStats& s) { return s.dropped; }));
  metrics.AddGauge("redpacket_relay_recovered_total",
                   "Outbox entries claimed by the recovery (older than outbox_claim_age_ms)",
                   relay_stat([](const relay::RelayStats& s) { return s.recovered; }));
  metrics.AddGauge("redpacket_relay_in_flight_events",
                   "Outbox events published and not yet acknowledged",
                   relay_stat([](const relay::RelayStats& s) { return s.in_flight; }));
  metrics.AddGauge("redpacket_loader_packets_restored_total",
                   "Lost packets restored from the ledger by this server's loader",
                   [this] { return static_cast<double>(packets_restored_.load()); });
  metrics.AddGauge("redpacket_loader_packets_loaded_total",
                   "Packet loads finished for a creator that did not",
                   [this] { return static_cast<double>(packets_loaded_.load()); });
  metrics.AddGauge("redpacket_loader_packets_waiting",
                   "Lost packets reserved, waiting for the ledger to hold every event",
                   [this] { return static_cast<double>(packets_waiting_restore_.load()); });
  metrics.AddGauge("redpacket_check_packets_lost",
                   "Unfinished packets the store had lost, at the check's last pass",
                   [this] { return static_cast<double>(packets_lost_seen_.load()); });
  metrics.AddGauge("redpacket_check_grabs_not_applied",
                   "Grabs Redis holds that the ledger has not applied, at the check's last pass",
                   [this] { return static_cast<double>(grabs_behind_.load()); });
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

}  // namespace redpacket::app
