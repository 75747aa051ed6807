// ReadRouter: pick the replica or the primary for each read.
#include "ledger/routing/read_router.h"

#include <spdlog/spdlog.h>

namespace redpacket::ledger {
namespace {

using domain::ErrorCode;
using domain::MakeError;

domain::Error NotHere() {
  return MakeError(ErrorCode::kInternal, "writes go to the primary's writer, not the read router");
}

bool Unavailable(const Status& status) {
  return !status.ok() && status.error().code == ErrorCode::kUnavailable;
}
template <class T>
bool Unavailable(const Result<T>& result) {
  return !result.ok() && result.error().code == ErrorCode::kUnavailable;
}

}  // namespace

ReadRouter::ReadRouter(std::unique_ptr<Ledger> primary, std::unique_ptr<Ledger> replica,
                       LagProbe lag, std::function<std::unique_ptr<Ledger>()> open_replica,
                       ReadRouterOptions options, std::shared_ptr<ReadRouterStats> stats)
    : primary_(std::move(primary)),
      replica_(std::move(replica)),
      lag_(std::move(lag)),
      open_replica_(std::move(open_replica)),
      options_(options),
      stats_(stats ? std::move(stats) : std::make_shared<ReadRouterStats>()) {}

Ledger* ReadRouter::Replica() {
  const auto now = std::chrono::steady_clock::now();
  if (now >= next_check_) {
    next_check_ = now + options_.recheck_interval;
    if (!replica_ && open_replica_) {
      try {
        replica_ = open_replica_();
      } catch (const std::exception& error) {
        spdlog::debug("read router: replica still unreachable: {}", error.what());
      }
    }
    bool ok = false;
    if (replica_ && lag_) {
      auto lag = lag_();
      if (lag.ok() && lag->has_value()) {
        stats_->replica_lag_seconds = **lag;
        ok = **lag <= options_.max_lag.count();
      } else {
        stats_->replica_lag_seconds = -1;
      }
    } else if (replica_) {
      ok = true;  // no probe: trust it until a read fails
    }
    if (ok != replica_ok_) {
      spdlog::info("read router: reads go to the {}", ok ? "replica" : "primary");
    }
    replica_ok_ = ok;
    stats_->replica_usable = ok;
  }
  return replica_ok_ ? replica_.get() : nullptr;
}

template <class T, class Call>
T ReadRouter::Route(Call call) {
  if (Ledger* replica = Replica()) {
    T result = call(*replica);
    if (!Unavailable(result)) {
      ++stats_->reads_on_replica;
      return result;
    }
    spdlog::warn("read router: the replica failed a read ({}); reading from the primary",
                 result.error().message);
    replica_ok_ = false;
    stats_->replica_usable = false;
    next_check_ = std::chrono::steady_clock::now() + options_.recheck_interval;
  }
  ++stats_->reads_on_primary;
  T result = call(*primary_);
  // A connection lost since the last read (the primary restarted) fails once, and the ledger
  // reconnects on the next call: a read is safe to repeat.
  if (Unavailable(result)) result = call(*primary_);
  return result;
}

Result<Cents> ReadRouter::Balance(UserId user_id) {
  return Route<Result<Cents>>([&](Ledger& ledger) { return ledger.Balance(user_id); });
}

Result<HistoryPage> ReadRouter::History(UserId user_id, HistoryKind kind, int limit,
                                        std::string_view cursor) {
  return Route<Result<HistoryPage>>(
      [&](Ledger& ledger) { return ledger.History(user_id, kind, limit, cursor); });
}

Result<std::optional<PacketRecord>> ReadRouter::GetPacket(PacketId packet_id) {
  auto found = Route<Result<std::optional<PacketRecord>>>(
      [&](Ledger& ledger) { return ledger.GetPacket(packet_id); });
  // A packet created a moment ago may not have reached the replica: an unknown id is asked
  // of the primary before it is called unknown.
  if (found.ok() && !found->has_value() && replica_ok_) {
    ++stats_->reads_on_primary;
    return primary_->GetPacket(packet_id);
  }
  return found;
}

// What decides money (recovery, reconciliation, audit) reads the primary.
Result<std::vector<PacketRecord>> ReadRouter::LoadUnfinishedPackets() {
  return primary_->LoadUnfinishedPackets();
}
Result<std::vector<PacketProgress>> ReadRouter::ListUnfinishedPackets() {
  return primary_->ListUnfinishedPackets();
}
Result<AuditFacts> ReadRouter::ReadAuditFacts() { return primary_->ReadAuditFacts(); }

Status ReadRouter::Migrate() { return NotHere(); }
Result<UserRecord> ReadRouter::CreateUser(std::string_view) { return NotHere(); }
Result<Cents> ReadRouter::Deposit(UserId, Cents, std::string_view) { return NotHere(); }
Result<PacketRecord> ReadRouter::CreatePacket(const domain::PacketSpec&, const std::vector<Cents>&,
                                              TimePoint, TimePoint, std::string_view) {
  return NotHere();
}
Status ReadRouter::ApplyEvents(std::span<const domain::LedgerEvent>,
                               const domain::PartitionOffsets&) {
  return NotHere();
}
Result<domain::PartitionOffsets> ReadRouter::AppliedOffsets() { return primary_->AppliedOffsets(); }

}  // namespace redpacket::ledger
