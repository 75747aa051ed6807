// PacketLoader: intents in, packets loaded or restored (see packet_loader.h).
#include "loader/packet_loader.h"

#include <spdlog/spdlog.h>

#include <future>
#include <memory>

namespace redpacket::loader {
namespace {

bool Finished(domain::PacketStatus status) {
  return status == domain::PacketStatus::kExhausted || status == domain::PacketStatus::kRefunded;
}

// Whether the ledger has applied everything up to `end` (per partition: the offset the next
// event gets; applied holds the last offset applied).
bool Covers(const domain::PartitionOffsets& applied, const domain::PartitionOffsets& end) {
  for (const auto& [partition, next] : end) {
    if (next == 0) continue;
    auto it = applied.find(partition);
    if (it == applied.end() || it->second + 1 < next) return false;
  }
  return true;
}

}  // namespace

PacketLoader::PacketLoader(store::PacketStore& store, store::RestoreTarget& target,
                           store::Outbox& outbox, ledger::Ledger& ledger, bus::BusPositions& bus,
                           LoaderOptions options)
    : store_(store),
      target_(target),
      outbox_(outbox),
      ledger_(ledger),
      bus_(bus),
      options_(options) {}

void PacketLoader::Lost(std::span<const domain::PacketId> packet_ids) {
  for (domain::PacketId id : packet_ids) {
    if (domain::Status requested = ledger_.RequestLoad(id); !requested) {
      spdlog::warn("loader: cannot record the intent to restore packet {}: {}", id,
                   requested.error().message);
    }
  }
}

domain::Result<LoaderStats> PacketLoader::RunOnce() {
  LoaderStats stats;
  applied_.reset();
  auto lost = target_.TakeLost(options_.batch);
  if (!lost) return lost.error();
  if (!lost->empty()) {
    stats.reported_lost = lost->size();
    Lost(*lost);
  }
  auto pending = ledger_.PendingLoads(options_.batch);
  if (!pending) return pending.error();
  stats.pending = pending->size();
  for (domain::PacketId id : *pending) {
    if (Load(id, stats) == Step::kFailed) ++stats.failures;
  }
  // Forget what is no longer pending (completed by another server's loader).
  if (waiting_.size() > pending->size()) {
    std::erase_if(waiting_, [&](const auto& entry) {
      return std::find(pending->begin(), pending->end(), entry.first) == pending->end();
    });
  }
  return stats;
}

PacketLoader::Step PacketLoader::Load(domain::PacketId id, LoaderStats& stats) {
  auto record = ledger_.GetPacket(id);
  if (!record) {
    spdlog::warn("loader: cannot read packet {}: {}", id, record.error().message);
    return Step::kFailed;
  }
  auto complete = [&]() {
    waiting_.erase(id);
    if (domain::Status done = ledger_.CompleteLoad(id); !done) {
      spdlog::warn("loader: cannot complete the intent of packet {}: {}", id, done.error().message);
      return Step::kFailed;
    }
    return Step::kDone;
  };
  if (!record->has_value()) return complete();  // no such packet: nothing to load
  if (Finished((*record)->status)) {
    // The ledger finished it: the ledger answers for it from now on. A reservation or a
    // registration for expiry it left in the store goes.
    if (domain::Status forgotten = target_.Unregister(id); !forgotten) return Step::kFailed;
    ++stats.finished;
    return complete();
  }
  auto reservation = target_.Reserve(id, (*record)->expires_at);
  if (!reservation) {
    spdlog::warn("loader: cannot reserve packet {}: {}", id, reservation.error().message);
    return Step::kFailed;
  }
  switch (*reservation) {
    case store::Reservation::kHeld:
      // Its keys are there, but the load may have stopped after them (the creator's Add failed
      // at its last step, the registration for expiry): Add again, which changes no key of a
      // packet that exists and registers it (a packet never swept is never refunded).
      if (domain::Status added = AddToStore(**record); !added) {
        spdlog::warn("loader: cannot finish loading packet {}: {}", id, added.error().message);
        return Step::kFailed;
      }
      return complete();
    case store::Reservation::kLoading:
      // A load cut short: nobody could grab the packet meanwhile, so the ledger's record is
      // all there is. Add resumes where it stopped.
      if (domain::Status added = AddToStore(**record); !added) {
        spdlog::warn("loader: cannot finish loading packet {}: {}", id, added.error().message);
        return Step::kFailed;
      }
      ++stats.loaded;
      spdlog::info("loader: finished loading packet {}", id);
      return complete();
    case store::Reservation::kReserved:
      break;
  }
  const Step step = Restore(**record, stats);
  if (step == Step::kDone) return complete();
  return step;
}

// Reserved: no grab can take a share now. Safe to restore once the ledger holds every event
// the packet ever decided: first none may wait in its outbox (the relay publishes them), then
// the ledger must have applied the bus up to its end as seen after that.
PacketLoader::Step PacketLoader::Restore(const ledger::PacketRecord& reserved, LoaderStats& stats) {
  const domain::PacketId id = reserved.packet_id;
  auto target = waiting_.find(id);
  if (target == waiting_.end()) {
    auto holds = outbox_.Holds(id);
    if (!holds) return Step::kFailed;
    if (*holds) {
      ++stats.waiting;
      return Step::kWaiting;
    }
    auto end = bus_.EndOffsets(options_.bus_timeout);
    if (!end) {
      spdlog::warn("loader: cannot read where the bus ends: {}", end.error().message);
      return Step::kFailed;
    }
    target = waiting_.emplace(id, std::move(*end)).first;
  }
  if (!applied_) {
    auto applied = ledger_.AppliedOffsets();
    if (!applied) return Step::kFailed;
    applied_ = std::move(*applied);
  }
  if (!Covers(*applied_, target->second)) {
    ++stats.waiting;
    return Step::kWaiting;
  }
  // Read again: the events applied since the first read belong to the record now.
  auto record = ledger_.GetPacket(id);
  if (!record || !record->has_value()) return Step::kFailed;
  if (Finished((**record).status)) {
    if (domain::Status forgotten = target_.Unregister(id); !forgotten) return Step::kFailed;
    ++stats.finished;
    return Step::kDone;
  }
  if (domain::Status added = AddToStore(**record); !added) {
    spdlog::warn("loader: cannot restore packet {}: {}", id, added.error().message);
    return Step::kFailed;
  }
  ++stats.restored;
  spdlog::warn("loader: restored lost packet {} from the ledger ({} grabs, {} shares left)", id,
               (**record).grabs.size(), (**record).shares.size() - (**record).grabs.size());
  return Step::kDone;
}

domain::Status PacketLoader::AddToStore(const ledger::PacketRecord& record) {
  auto promise = std::make_shared<std::promise<domain::Status>>();
  auto future = promise->get_future();
  store_.Add(record, [promise](domain::Status status) { promise->set_value(std::move(status)); });
  if (future.wait_for(options_.load_timeout) != std::future_status::ready) {
    return domain::MakeError(domain::ErrorCode::kUnavailable, "the store did not load in time");
  }
  return future.get();
}

}  // namespace redpacket::loader
