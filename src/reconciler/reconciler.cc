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
  auto packets = ledger_.LoadUnfinishedPackets();
  if (!packets) return packets.error();
  std::erase_if(reemitted_,
                [&](const auto& entry) { return now - entry.second >= options_.reemit_after; });
  ReconcileStats stats;
  for (ledger::PacketRecord& packet : *packets) {
    ++stats.packets_checked;
    auto held = Await<std::optional<store::PacketSnapshot>>(options_.call_timeout, [&](auto done) {
      store_.Snapshot(packet.packet_id, std::move(done));
    });
    if (!held) {
      ++stats.failures;
      continue;
    }
    if (!held->has_value()) {
      // Not in the store: the ledger debited the sender but the load never finished. Add is
      // idempotent and resumes a cut-short load.
      if (packet.status != domain::PacketStatus::kOpen) continue;
      auto added = Await<domain::Status>(options_.call_timeout,
                                         [&](auto done) { store_.Add(packet, std::move(done)); });
      if (added && added->ok()) {
        ++stats.packets_reloaded;
        spdlog::warn("reconciler: packet {} was missing from the store; reloaded",
                     packet.packet_id);
      } else {
        ++stats.failures;
      }
      continue;
    }
    std::unordered_set<domain::UserId> credited;
    for (const auto& grab : packet.grabs) credited.insert(grab.user_id);
    for (const domain::Grab& grab : (*held)->record.grabs) {
      if (credited.contains(grab.user_id) || now - grab.grabbed_at < options_.min_age) continue;
      domain::LedgerEvent event{domain::LedgerEvent::Type::kGrab,
                                packet.packet_id,
                                grab.user_id,
                                grab.amount_cents,
                                grab.seq,
                                domain::ToUnixMillis(grab.grabbed_at)};
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
      }
    }
  }
  return stats;
}

}  // namespace redpacket::reconciler
