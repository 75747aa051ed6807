// Cluster mode's backend, wired here: Kafka (the relay's producer), MariaDB as the ledger (writes
// on the primary, lag-tolerant reads on the replica with fallback), the health checks behind
// /readyz; and the components of the mode: the Redis Cluster store with its outbox, the relay
// that publishes the outbox, and the sweep policy (only the holder of the sweeper lease sweeps;
// the rest of its work is in lease_work.h). An API server keeps no state another server needs.
// Not thread-safe: drive it from the main thread (its health state is read from any thread).
#pragma once

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "app/components.h"
#include "app/store_component.h"
#include "bus/kafka/kafka_sink.h"
#include "domain/clock.h"
#include "http/ops/metrics.h"
#include "lease/lease.h"
#include "ledger/mariadb/mariadb_ledger.h"
#include "ledger/routing/read_router.h"
#include "loader/packet_loader.h"
#include "net/redis/endpoint.h"
#include "reconciler/reconciler.h"
#include "relay/outbox_relay.h"
#include "service/red_packet_service.h"
#include "store/redis/redis_store.h"
#include "sweeper/sweeper.h"
#include "threads/task_thread.h"

namespace redpacket::app {

struct ClusterOptions {
  std::vector<net::redis::Endpoint> redis_seeds;
  std::string redis_nodes;  // as configured, for messages
  bus::KafkaSinkOptions kafka;
  ledger::MariaDbOptions primary;
  std::optional<ledger::MariaDbOptions> replica;  // nullopt: every read on the primary
  ledger::ReadRouterOptions read_routing;
  std::chrono::milliseconds lease_ttl{5000};
  std::chrono::milliseconds reconcile_interval{10000};  // the check's
  reconciler::ReconcilerOptions reconcile;
  relay::RelayOptions relay;
  // The lease holder claims what the relay's fast path left in the outbox this often.
  std::chrono::milliseconds recovery_interval{2000};
  loader::LoaderOptions loader;
  std::string server_name;  // this server's lease holder name (host:port:pid)
  // "Now" of the service, the store, the ledgers (primary and replica) and the token check.
  const domain::TimeSource* clock = &domain::SystemTime();
};

// Kafka, MariaDB and the health checks, as a component.
class ClusterBackend final : public Component, public service::DependencyChecks {
 public:
  explicit ClusterBackend(ClusterOptions options);
  ~ClusterBackend() override;

  std::string name() const override { return "cluster backend"; }
  // Blocking: reaches the MariaDB primary and Kafka (throws std::runtime_error "cannot reach
  // MariaDB at ..." / "cannot reach Kafka at ..."), then starts the health checks.
  void Start() override;
  // Blocking: stops the health checks, flushes Kafka (every publish settles). After the relay.
  void Stop() override;

  // For the service: a connection to the primary, and the reads' router (replica, fallback).
  std::unique_ptr<ledger::Ledger> OpenWriter() const;
  std::unique_ptr<ledger::Ledger> OpenReader() const;
  bus::KafkaSink& sink() { return *sink_; }
  const ClusterOptions& options() const { return options_; }
  const domain::TimeSource& clock() const { return *options_.clock; }
  // For /readyz: each dependency and "ok" or why not.
  std::map<std::string, std::string> Checks() const override;

  void AddMetrics(http::Metrics& metrics);

 private:
  void CheckDependencies();

  ClusterOptions options_;
  std::unique_ptr<bus::KafkaSink> sink_;
  std::shared_ptr<ledger::ReadRouterStats> read_stats_ =
      std::make_shared<ledger::ReadRouterStats>();
  // The health checks' own connections (the health thread, or Start() before it runs).
  std::unique_ptr<ledger::Ledger> health_primary_;
  std::unique_ptr<ledger::ReplicaLagProbe> health_replica_;
  mutable std::mutex checks_mutex_;
  std::map<std::string, std::string> checks_;
  std::unique_ptr<threads::TaskThread> health_;  // "rp-health", every 2 s
  bool started_ = false;
};

// The relay, as a component: made at Start() (the backend's sink exists then), started on the
// store's outbox. Before Start() and after Stop() a handed entry is left in the outbox (the
// recovery of the lease holder publishes it). Stop() after the HTTP server drained (no grab is
// recorded afterwards) and before its loops stop (the relay removes from the outbox through
// them). Hand() is thread-safe.
class RelayComponent final : public Component {
 public:
  RelayComponent(ClusterBackend& backend, std::function<store::Outbox&()> outbox)
      : backend_(backend), outbox_(std::move(outbox)) {}
  std::string name() const override { return "relay"; }
  void Start() override;
  // Blocking: what is acknowledged later stays in the outbox (a later recovery claims it).
  void Stop() override;
  // The store's on_recorded: a grab or refund recorded and replicated.
  void Hand(store::OutboxEntry entry);
  // Valid after Start().
  relay::OutboxRelay& relay() { return *relay_; }
  void AddMetrics(http::Metrics& metrics);

 private:
  ClusterBackend& backend_;
  std::function<store::Outbox&()> outbox_;
  std::unique_ptr<relay::OutboxRelay> relay_;
  std::atomic<relay::OutboxRelay*> live_{nullptr};  // relay_ between Start() and Stop()
};

// The Redis Cluster store on the server's I/O loops, as a component. Its maker blocks until
// every client has the slot map, or throws "cannot reach Redis at ...". Its recorded events go to
// `relay`. The store is destroyed with the list, after the loops stopped (redis_store.h).
using RedisStoreComponent = StoreComponent<store::redis::RedisStore>;
std::unique_ptr<RedisStoreComponent> MakeRedisStoreComponent(
    const ClusterOptions& options,
    std::function<std::vector<boost::asio::io_context*>()> io_contexts, RelayComponent& relay);

}  // namespace redpacket::app
