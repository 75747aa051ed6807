// What only the holder of the sweeper lease does in cluster mode, each behind the interfaces of
// its component: the sweep (ClusterSweep, the Sweeper's policy: a sweep fenced by the lease's
// token), and every second the relay's recovery (what no fast path published), the loader
// (creations whose server died, lost packets) and, now and then, the check (reports only).
// Thread-safety: LeaseHolder is (it renews on a thread of its own); ClusterSweep runs on the
// sweeper's thread, LeaseWork on its own.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "app/cluster_backend.h"
#include "app/components.h"
#include "http/ops/metrics.h"
#include "lease/lease.h"
#include "loader/packet_loader.h"
#include "reconciler/reconciler.h"
#include "relay/outbox_relay.h"
#include "store/redis/redis_store.h"
#include "sweeper/sweeper.h"
#include "threads/task_thread.h"

namespace redpacket::app {

// The sweeper lease of this server, as a component with a thread of its own ("rp-lease"): it
// tries to acquire the lease, or renews it, every third of its time to live, whatever the sweep
// interval; its fencing token is readable from any thread. A token read here may be stale by up
// to that third: what it guards is fenced in Redis (a holder past its lease is refused there).
// Stop() releases it (another server sweeps at once instead of after its ttl). Stop it after the
// sweeper and the lease holder's work.
class LeaseHolder final : public Component {
 public:
  LeaseHolder(std::unique_ptr<lease::Lease> lease, std::string holder,
              std::chrono::milliseconds ttl);
  std::string name() const override { return "sweeper lease"; }
  void Start() override { thread_.Start(); }
  void Stop() override;
  std::uint64_t token() const { return token_.load(); }  // 0: not held

 private:
  void Refresh();  // blocking

  std::unique_ptr<lease::Lease> lease_;
  std::string holder_;
  std::chrono::milliseconds ttl_;
  std::atomic<std::uint64_t> token_{0};
  threads::TaskThread thread_;  // last: it stops before the rest goes
};

// The cluster's sweep: only the lease holder sweeps, fenced by its token (a holder that stalled
// past its lease is refused by Redis, batch by batch). Packets the sweep finds lost are reported
// to the loader through the store.
class ClusterSweep final : public sweeper::SweepPolicy {
 public:
  ClusterSweep(LeaseHolder& holder, RedisStoreComponent& store) : holder_(holder), store_(store) {}
  std::optional<store::SweepStats> SweepOnce(domain::TimePoint now) override;

 private:
  LeaseHolder& holder_;
  RedisStoreComponent& store_;
};

// The lease holder's other work, as a component with a thread of its own ("rp-lease-work").
class LeaseWork final : public Component {
 public:
  // Each must outlive this; started before it.
  LeaseWork(ClusterBackend& backend, LeaseHolder& holder, RedisStoreComponent& store,
            RelayComponent& relay);
  std::string name() const override { return "lease holder's work"; }
  void Start() override { thread_.Start(); }
  void Stop() override { thread_.Stop(); }
  void AddMetrics(http::Metrics& metrics);

 private:
  void Tick();
  // Its own primary connection and the parts it drives; false when MariaDB is unreachable now.
  bool EnsureParts();

  ClusterBackend& backend_;
  const ClusterOptions& options_;
  LeaseHolder& holder_;
  RedisStoreComponent& store_;
  RelayComponent& relay_;
  std::unique_ptr<ledger::Ledger> ledger_;
  std::unique_ptr<loader::PacketLoader> loader_;
  std::unique_ptr<reconciler::Reconciler> check_;
  std::chrono::steady_clock::time_point next_check_{};
  std::chrono::steady_clock::time_point next_recovery_{};
  std::atomic<std::uint64_t> packets_lost_seen_{0};  // the check's last pass
  std::atomic<std::uint64_t> grabs_behind_{0};       // the check's last pass
  std::atomic<std::uint64_t> packets_restored_{0};
  std::atomic<std::uint64_t> packets_loaded_{0};
  std::atomic<std::uint64_t> packets_waiting_restore_{0};
  threads::TaskThread thread_;  // last: it stops before the rest goes
};

}  // namespace redpacket::app
