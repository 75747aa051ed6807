// Cluster mode's backend, wired here: the Redis Cluster store (packets, grabs), Kafka as the
// bus (an idempotent producer, acks=all), MariaDB as the ledger (writes on the primary, lag-
// tolerant reads on the replica with fallback), the sweeper lease on Redis, the reconciler, and
// a health thread behind /readyz. An API server keeps no state another server needs.
// Not thread-safe: drive it from the main thread (its health and lease state are atomics).
#pragma once

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "bus/kafka/kafka_sink.h"
#include "http/metrics.h"
#include "lease/lease.h"
#include "ledger/mariadb/mariadb_ledger.h"
#include "ledger/routing/read_router.h"
#include "net/redis/endpoint.h"
#include "reconciler/reconciler.h"
#include "service/red_packet_service.h"
#include "store/redis/redis_store.h"

namespace redpacket::app {

struct ClusterOptions {
  std::vector<net::redis::Endpoint> redis_seeds;
  std::string redis_nodes;  // as configured, for messages
  bus::KafkaSinkOptions kafka;
  ledger::MariaDbOptions primary;
  std::optional<ledger::MariaDbOptions> replica;  // nullopt: every read on the primary
  ledger::ReadRouterOptions read_routing;
  std::chrono::milliseconds lease_ttl{5000};
  std::chrono::milliseconds reconcile_interval{10000};
  reconciler::ReconcilerOptions reconcile;
  std::string server_name;  // this server's lease holder name (host:port:pid)
};

class ClusterBackend {
 public:
  explicit ClusterBackend(ClusterOptions options);
  ~ClusterBackend();

  // Blocking: reaches Kafka and the MariaDB primary (throws std::runtime_error "cannot reach
  // Kafka at ..." / "cannot reach MariaDB at ..."), then starts the health thread.
  void Start();
  // The Redis store runs on the server's I/O loops: `io_contexts` is filled once the server
  // has started, before the service starts.
  service::ServiceParts MakeServiceParts(
      std::shared_ptr<std::vector<boost::asio::io_context*>> io_contexts);
  // For /readyz: each dependency and "ok" or why not.
  std::map<std::string, std::string> Checks() const;
  // Blocking: releases the sweeper lease, flushes Kafka, joins the health thread. Call after
  // the service stopped.
  void Stop();

  void AddMetrics(http::Metrics& metrics);

 private:
  void HealthLoop();
  void CheckDependencies();
  // The sweeper lease's fencing token when this server holds it, else nullopt.
  std::optional<std::uint64_t> HoldLease();
  std::optional<store::SweepStats> Sweep(domain::TimePoint now);
  void AfterSweep(store::PacketStore& store);

  ClusterOptions options_;
  std::unique_ptr<bus::KafkaSink> sink_;
  std::unique_ptr<lease::Lease> lease_;
  std::shared_ptr<ledger::ReadRouterStats> read_stats_ =
      std::make_shared<ledger::ReadRouterStats>();

  store::redis::RedisStore* redis_store_ = nullptr;  // made by the service's store factory
  // Sweeper thread only.
  std::unique_ptr<ledger::Ledger> reconcile_ledger_;
  std::unique_ptr<reconciler::Reconciler> reconciler_;
  std::chrono::steady_clock::time_point next_reconcile_{};
  std::atomic<std::uint64_t> lease_token_{0};  // 0: not held
  std::atomic<std::uint64_t> grabs_reemitted_{0};
  std::atomic<std::uint64_t> packets_reloaded_{0};

  // Health checks' own connections (the health thread, or Start() before it runs).
  std::unique_ptr<ledger::Ledger> health_primary_;
  std::unique_ptr<ledger::ReplicaLagProbe> health_replica_;
  mutable std::mutex health_mutex_;
  std::map<std::string, std::string> checks_;
  std::condition_variable health_wake_;
  bool health_stop_ = false;
  std::thread health_thread_;
  bool started_ = false;
};

}  // namespace redpacket::app
