// OutboxRelay: publish, collect the acknowledgements, remove in batches; the recovery claims.
#include "relay/outbox_relay.h"

#include <spdlog/spdlog.h>

#include <future>
#include <memory>

namespace redpacket::relay {

OutboxRelay::OutboxRelay(bus::EventSink& sink, RelayOptions options)
    : sink_(sink),
      options_(options),
      remover_({.name = "rp-relay", .period = options_.remove_interval},
               [this] { RemoveAcknowledged(); }) {}

OutboxRelay::~OutboxRelay() { Stop(); }

void OutboxRelay::Hand(store::OutboxEntry entry) {
  handed_.fetch_add(1, std::memory_order_relaxed);
  {
    std::lock_guard lock(mutex_);
    if (!started_) {
      if (!stopping_) before_start_.push_back(std::move(entry));
      return;
    }
  }
  Publish(std::move(entry), true);
}

void OutboxRelay::Publish(store::OutboxEntry entry, bool handed) {
  if (handed && in_flight_.load(std::memory_order_relaxed) >= options_.max_in_flight) {
    // Left in the outbox: the recovery publishes it once the broker is back.
    dropped_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  in_flight_.fetch_add(1, std::memory_order_relaxed);
  const domain::LedgerEvent event = entry.event;
  auto shared = std::make_shared<store::OutboxEntry>(std::move(entry));
  sink_.Publish(
      event,
      [this, shared] {
        in_flight_.fetch_sub(1, std::memory_order_relaxed);
        acknowledged_count_.fetch_add(1, std::memory_order_relaxed);
        std::lock_guard lock(mutex_);
        acknowledged_.push_back(std::move(*shared));
      },
      [this, shared](const domain::Error& error) {
        in_flight_.fetch_sub(1, std::memory_order_relaxed);
        // Stays in the outbox: the recovery claims it again. Logged once per burst.
        if (failed_.fetch_add(1, std::memory_order_relaxed) % 1000 == 0) {
          spdlog::warn("relay: event {} not acknowledged ({}); it stays in the outbox",
                       shared->event.EventId(), error.message);
        }
      });
}

void OutboxRelay::Start(store::Outbox& outbox) {
  std::vector<store::OutboxEntry> waiting;
  {
    std::lock_guard lock(mutex_);
    if (started_ || stopping_) return;
    outbox_ = &outbox;
    started_ = true;
    waiting.swap(before_start_);
  }
  remover_.Start();
  for (auto& entry : waiting) Publish(std::move(entry), true);
}

void OutboxRelay::RemoveAcknowledged() {
  std::vector<store::OutboxEntry> batch;
  {
    std::lock_guard lock(mutex_);
    batch.swap(acknowledged_);
  }
  if (!batch.empty()) outbox_->Remove(std::move(batch));
}

void OutboxRelay::Stop() {
  bool started = false;
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    stopping_ = true;
    started = started_;
    before_start_.clear();  // never published: they are in the outbox
  }
  remover_.Stop();
  if (started) RemoveAcknowledged();  // what was acknowledged since the last tick
}

domain::Result<RecoveryStats> OutboxRelay::RecoverOnce() {
  if (outbox_ == nullptr) return RecoveryStats{};
  auto claimed = outbox_->Claim(options_.claim_min_age, options_.claim_limit);
  if (!claimed) return claimed.error();
  RecoveryStats stats;
  stats.claimed = claimed->size();
  if (claimed->empty()) return stats;
  recovered_.fetch_add(claimed->size(), std::memory_order_relaxed);
  spdlog::info("relay: recovering {} outbox entries older than {} ms", claimed->size(),
               options_.claim_min_age.count());
  // Counted here rather than through Publish(): the recovery waits for its own acks.
  struct Pending {
    std::mutex mutex;
    std::size_t left = 0;
    std::size_t acknowledged = 0;
    std::promise<void> all;
  };
  auto pending = std::make_shared<Pending>();
  pending->left = claimed->size();
  auto settled = pending->all.get_future();
  auto settle = [pending](bool acknowledged) {
    std::lock_guard lock(pending->mutex);
    if (acknowledged) ++pending->acknowledged;
    if (--pending->left == 0) pending->all.set_value();
  };
  for (store::OutboxEntry& entry : *claimed) {
    in_flight_.fetch_add(1, std::memory_order_relaxed);
    auto shared = std::make_shared<store::OutboxEntry>(std::move(entry));
    sink_.Publish(
        shared->event,
        [this, shared, settle] {
          in_flight_.fetch_sub(1, std::memory_order_relaxed);
          acknowledged_count_.fetch_add(1, std::memory_order_relaxed);
          {
            std::lock_guard lock(mutex_);
            acknowledged_.push_back(std::move(*shared));
          }
          settle(true);
        },
        [this, settle](const domain::Error&) {
          in_flight_.fetch_sub(1, std::memory_order_relaxed);
          failed_.fetch_add(1, std::memory_order_relaxed);
          settle(false);
        });
  }
  if (settled.wait_for(options_.recovery_wait) != std::future_status::ready) {
    spdlog::warn("relay: recovery not acknowledged within {} ms; it continues in the background",
                 options_.recovery_wait.count());
  }
  remover_.TickNow();
  std::lock_guard lock(pending->mutex);
  stats.acknowledged = pending->acknowledged;
  return stats;
}

RelayStats OutboxRelay::stats() const {
  RelayStats stats;
  stats.handed = handed_.load(std::memory_order_relaxed);
  stats.acknowledged = acknowledged_count_.load(std::memory_order_relaxed);
  stats.failed = failed_.load(std::memory_order_relaxed);
  stats.dropped = dropped_.load(std::memory_order_relaxed);
  stats.recovered = recovered_.load(std::memory_order_relaxed);
  stats.in_flight = in_flight_.load(std::memory_order_relaxed);
  return stats;
}

}  // namespace redpacket::relay
