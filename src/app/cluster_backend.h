// Cluster mode's backend, wired here: the Redis Cluster store (packets, grabs, and the outbox
// their scripts record events in), the relay that publishes the outbox to Kafka (an idempotent
// producer, acks=all), MariaDB as the ledger (writes on the primary, lag-tolerant reads on the
// replica with fallback), the sweeper lease on Redis and what its holder runs (expiry, the
// relay's recovery, the loader, the check), and a health thread behind /readyz. An API server
// keeps no state another server needs.
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
  // Blocking: stops removing published entries from the outbox (the store is about to go; what
  // is acknowledged later is claimed again by a later recovery). Call before the service stops.
  void StopRelay();
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
  // The sweeper thread's own primary connection and the components it drives; false when
  // MariaDB cannot be reached now.
  bool EnsureSweeperParts();

  ClusterOptions options_;
  std::unique_ptr<bus::KafkaSink> sink_;
  // After the sink (destroyed before it, once Stop() has closed it and settled every callback).
  std::unique_ptr<relay::OutboxRelay> relay_;
  std::unique_ptr<lease::Lease> lease_;
  std::shared_ptr<ledger::ReadRouterStats> read_stats_ =
      std::make_shared<ledger::ReadRouterStats>();

  store::redis::RedisStore* redis_store_ = nullptr;  // made by the service's store factory
  // Sweeper thread only.
  std::unique_ptr<ledger::Ledger> sweeper_ledger_;
  std::unique_ptr<reconciler::Reconciler> reconciler_;
  std::unique_ptr<loader::PacketLoader> loader_;
  std::chrono::steady_clock::time_point next_reconcile_{};
  std::chrono::steady_clock::time_point next_recovery_{};
  std::atomic<std::uint64_t> lease_token_{0};        // 0: not held
  std::atomic<std::uint64_t> packets_lost_seen_{0};  // the check's last pass
  std::atomic<std::uint64_t> grabs_behind_{0};       // the check's last pass
  std::atomic<std::uint64_t> packets_restored_{0};
  std::atomic<std::uint64_t> packets_loaded_{0};
  std::atomic<std::uint64_t> packets_waiting_restore_{0};

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
