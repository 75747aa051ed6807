// Reconciler: compare the store's grabs with the ledger's, re-emit what is missing.
#include "reconciler/reconciler.h"

#include <spdlog/spdlog.h>

#include <future>
#include <memory>
#include <unordered_set>

namespace redpacket::reconciler {
namespace {

// Waits for an asynchronous store/bus call; nullopt after the timeout (the callback may still
// run later: the promise is shared so it outlives this frame).
template <class T, class Start>
std::optional<T> Await(std::chrono::milliseconds timeout, Start start) {
  auto promise = std::make_shared<std::promise<T>>();
  auto future = promise->get_future();
  start([promise](T value) { promise->set_value(std::move(value)); });
  if (future.wait_for(timeout) != std::future_status::ready) return std::nullopt;
  return future.get();
}

}  // namespace

Reconciler::Reconciler(store::PacketStore& store, ledger::LedgerReader& ledger,
                       bus::EventSink& sink, ReconcilerOptions options)
    : store_(store), ledger_(ledger), sink_(sink), options_(options) {}

domain::Result<ReconcileStats> Reconciler::RunOnce(domain::TimePoint now) {
  auto packets = ledger_.ListUnfinishedPackets();
  if (!packets) return packets.error();
  std::erase_if(reemitted_,
                [&](const auto& entry) { return now - entry.second >= options_.reemit_after; });
  std::unordered_map<domain::PacketId, Observation> still_ahead;
  ReconcileStats stats;
  for (const ledger::PacketProgress& progress : *packets) {
    ++stats.packets_checked;
    using Count = domain::Result<std::optional<std::int64_t>>;
    auto count = Await<Count>(options_.call_timeout, [&](auto done) {
      store_.CountGrabs(progress.packet_id, std::move(done));
    });
    if (!count || !count->ok()) {
      ++stats.failures;
      if (auto it = ahead_.find(progress.packet_id); it != ahead_.end()) still_ahead.insert(*it);
      continue;
    }
    if (!count->value().has_value()) {
      if (progress.status == domain::PacketStatus::kOpen) Reload(progress.packet_id, stats);
      continue;
    }
    const std::int64_t store_count = *count->value();
    if (store_count <= progress.grabbed_count) continue;  // nothing missing
    // The store is ahead: normal while events are in flight. Only a ledger still behind what
    // the store had min_age ago is missing something.
    auto seen = ahead_.find(progress.packet_id);
    if (seen == ahead_.end() || progress.grabbed_count >= seen->second.store_count) {
      still_ahead[progress.packet_id] = Observation{store_count, now};
      continue;
    }
    if (now - seen->second.at < options_.min_age) {
      still_ahead.insert(*seen);
      continue;
    }
    if (ReemitMissing(progress.packet_id, now, stats)) {
      still_ahead[progress.packet_id] = Observation{store_count, now};
    } else {
      still_ahead.insert(*seen);
    }
  }
  ahead_ = std::move(still_ahead);
  return stats;
}

void Reconciler::Reload(domain::PacketId packet_id, ReconcileStats& stats) {
  // Not in the store: the ledger debited the sender but the load never finished. Add is
  // idempotent and resumes a cut-short load.
  auto record = ledger_.GetPacket(packet_id);
  if (!record.ok() || !record->has_value()) {
    ++stats.failures;
    return;
  }
  auto added = Await<domain::Status>(
      options_.call_timeout, [&](auto done) { store_.Add(**record, std::move(done)); });
  if (added && added->ok()) {
    ++stats.packets_reloaded;
    spdlog::warn("reconciler: packet {} was missing from the store; reloaded", packet_id);
  } else {
    ++stats.failures;
  }
}

bool Reconciler::ReemitMissing(domain::PacketId packet_id, domain::TimePoint now,
                               ReconcileStats& stats) {
  auto record = ledger_.GetPacket(packet_id);
  auto held = Await<std::optional<store::PacketSnapshot>>(
      options_.call_timeout, [&](auto done) { store_.Snapshot(packet_id, std::move(done)); });
  if (!record.ok() || !record->has_value() || !held || !held->has_value()) {
    ++stats.failures;
    return false;
  }
  std::unordered_set<domain::UserId> credited;
  for (const auto& grab : (*record)->grabs) credited.insert(grab.user_id);
  bool all_sent = true;
  for (const domain::Grab& grab : (*held)->record.grabs) {
    if (credited.contains(grab.user_id) || now - grab.grabbed_at < options_.min_age) continue;
    domain::LedgerEvent event{domain::LedgerEvent::Type::kGrab, packet_id, grab.user_id,
                              grab.amount_cents, grab.seq, domain::ToUnixMillis(grab.grabbed_at)};
    if (reemitted_.contains(event.EventId())) continue;
    auto published = Await<bool>(options_.call_timeout, [&](auto done) {
      sink_.Publish(
          event, [done] { done(true); },
          [done](domain::Error error) {
            spdlog::warn("reconciler: re-emitting a grab failed: {}", error.message);
            done(false);
          });
    });
    if (published && *published) {
      ++stats.grabs_reemitted;
      reemitted_[event.EventId()] = now;
      spdlog::warn("reconciler: re-emitted grab {} (in the store, not in the ledger)",
                   event.EventId());
    } else {
      ++stats.failures;
      all_sent = false;
    }
  }
  return all_sent;
}

}  // namespace redpacket::reconciler
