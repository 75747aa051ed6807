// Reconciler: compare the store's grab counts with the ledger's, report (see reconciler.h).
#include "reconciler/reconciler.h"

#include <spdlog/spdlog.h>

#include <future>
#include <memory>

namespace redpacket::reconciler {

Reconciler::Reconciler(store::PacketStore& store, ledger::LedgerReader& ledger,
                       ReconcilerOptions options)
    : store_(store), ledger_(ledger), options_(options) {}

domain::Result<ReconcileStats> Reconciler::RunOnce() {
  auto packets = ledger_.ListUnfinishedPackets();
  if (!packets) return packets.error();
  ReconcileStats stats;
  for (const ledger::PacketProgress& progress : *packets) {
    ++stats.packets_checked;
    using Count = domain::Result<std::optional<std::int64_t>>;
    auto promise = std::make_shared<std::promise<Count>>();
    auto future = promise->get_future();
    store_.CountGrabs(progress.packet_id,
                      [promise](Count count) { promise->set_value(std::move(count)); });
    if (future.wait_for(options_.call_timeout) != std::future_status::ready) {
      ++stats.failures;
      continue;
    }
    Count count = future.get();
    if (!count.ok()) {
      ++stats.failures;
      continue;
    }
    if (!count->has_value()) {
      ++stats.packets_lost;
      spdlog::warn(
          "check: packet {} is unfinished in the ledger but the store lost it; the "
          "loader restores it",
          progress.packet_id);
      store_.ReportLost(progress.packet_id);
      continue;
    }
    if (**count > progress.grabbed_count) {
      ++stats.packets_behind;
      stats.grabs_behind += **count - progress.grabbed_count;
    }
  }
  return stats;
}

}  // namespace redpacket::reconciler
