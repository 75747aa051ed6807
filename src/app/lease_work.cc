// The lease holder's work: the fenced sweep, the relay's recovery, the loader, the check.
#include "app/lease_work.h"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace redpacket::app {

LeaseHolder::LeaseHolder(std::unique_ptr<lease::Lease> lease, std::string holder,
                         std::chrono::milliseconds ttl)
    : lease_(std::move(lease)),
      holder_(std::move(holder)),
      ttl_(ttl),
      thread_({.name = "rp-lease", .period = std::max(std::chrono::milliseconds(100), ttl / 3)},
              [this] { Refresh(); }) {}

void LeaseHolder::Stop() {
  thread_.Stop();
  if (token_.exchange(0) == 0) return;
  if (auto released = lease_->Release(holder_); !released) {
    spdlog::warn("releasing the sweeper lease: {}", released.error().message);
  }
}

void LeaseHolder::Refresh() {
  auto token = lease_->TryAcquire(holder_, ttl_);
  const std::uint64_t before = token_.load();
  if (!token.ok() || !token->has_value()) {
    if (before != 0) spdlog::info("sweeper lease lost: another server sweeps");
    if (!token.ok()) spdlog::warn("sweeper lease: {}", token.error().message);
    token_ = 0;
    return;
  }
  if (before != **token) {
    spdlog::info("sweeper lease taken: this server sweeps (fencing token {})", **token);
  }
  token_ = **token;
}

std::optional<store::SweepStats> ClusterSweep::SweepOnce(domain::TimePoint now) {
  const std::uint64_t token = holder_.token();
  if (token == 0) return std::nullopt;
  store::redis::RedisStore& store = store_.engine();
  auto swept = store.FencedSweep(now, token);
  if (!swept) {
    spdlog::warn("sweeper: {}", swept.error().message);
    return std::nullopt;
  }
  if (!swept->lost.empty()) {
    spdlog::warn("sweeper: {} expired packets have lost their keys; the loader restores them",
                 swept->lost.size());
    for (domain::PacketId id : swept->lost) store.ReportLost(id);
  }
  return *swept;
}

LeaseWork::LeaseWork(ClusterBackend& backend, LeaseHolder& holder, RedisStoreComponent& store,
                     RelayComponent& relay)
    : backend_(backend),
      options_(backend.options()),
      holder_(holder),
      store_(store),
      relay_(relay),
      thread_({.name = "rp-lease-work", .period = std::chrono::seconds(1)}, [this] { Tick(); }) {}

bool LeaseWork::EnsureParts() {
  try {
    if (!ledger_) ledger_ = ledger::OpenMariaDbLedger(options_.primary);
  } catch (const std::exception& error) {
    spdlog::warn("lease holder's work: {}", error.what());
    return false;
  }
  store::redis::RedisStore& store = store_.engine();
  if (!loader_) {
    loader_ = std::make_unique<loader::PacketLoader>(store, store, store, *ledger_, backend_.sink(),
                                                     options_.loader);
  }
  if (!check_) {
    check_ = std::make_unique<reconciler::Reconciler>(store, *ledger_, options_.reconcile);
  }
  return true;
}

void LeaseWork::Tick() {
  if (holder_.token() == 0) return;
  const auto now = std::chrono::steady_clock::now();
  if (now >= next_recovery_) {
    next_recovery_ = now + options_.recovery_interval;
    auto recovered = relay_.relay().RecoverOnce();
    if (!recovered) spdlog::warn("relay recovery: {}", recovered.error().message);
  }
  if (!EnsureParts()) return;
  auto loaded = loader_->RunOnce();
  if (!loaded) {
    // A lost connection fails this pass; the ledger reconnects on the next call.
    spdlog::warn("loader: {}", loaded.error().message);
  } else {
    packets_restored_ += loaded->restored;
    packets_loaded_ += loaded->loaded;
    packets_waiting_restore_ = loaded->waiting;
  }
  if (now < next_check_) return;
  next_check_ = now + options_.reconcile_interval;
  auto checked = check_->RunOnce();
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

void LeaseWork::AddMetrics(http::Metrics& metrics) {
  metrics.AddGauge("redpacket_sweeper_lease_token",
                   "Fencing token of the sweeper lease this server holds (0: none)",
                   [this] { return static_cast<double>(holder_.token()); });
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
}

}  // namespace redpacket::app
