// Read/write splitting for a replicated ledger: the reads that may lag (balance, history,
// details) go to the replica while it is up and no further behind than `max_lag`; otherwise, and
// for any read the replica fails with kUnavailable, to the primary. Writes are not this
// object's: it refuses them (the writer is a connection to the primary of its own).
// Blocking like the ledgers it wraps; NOT thread-safe (one reader thread drives it); the
// counters are atomics, readable from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>

#include "ledger/ledger.h"

namespace redpacket::ledger {

struct ReadRouterOptions {
  std::chrono::seconds max_lag{5};
  // How often the replica's lag is asked (and a down replica tried again).
  std::chrono::milliseconds recheck_interval{1000};
};

struct ReadRouterStats {
  std::atomic<std::int64_t> replica_lag_seconds{-1};  // -1: unknown (down, not replicating)
  std::atomic<std::uint64_t> reads_on_replica{0};
  std::atomic<std::uint64_t> reads_on_primary{0};
  std::atomic<bool> replica_usable{false};
};

class ReadRouter final : public Ledger {
 public:
  // lag_seconds: the replica's lag, nullopt when it is down or not replicating (then reads go
  // to the primary). Called at most once per recheck_interval, on the reading thread.
  using LagProbe = std::function<Result<std::optional<std::int64_t>>()>;
  // `replica` may be null (no replica configured, or unreachable at start): every read then
  // goes to the primary. `open_replica` (optional) reopens it after a loss.
  ReadRouter(std::unique_ptr<Ledger> primary, std::unique_ptr<Ledger> replica, LagProbe lag,
             std::function<std::unique_ptr<Ledger>()> open_replica, ReadRouterOptions options,
             std::shared_ptr<ReadRouterStats> stats);

  Result<Cents> Balance(UserId user_id) override;
  Result<HistoryPage> History(UserId user_id, HistoryKind kind, int limit,
                              std::string_view cursor) override;
  Result<std::optional<PacketRecord>> GetPacket(PacketId packet_id) override;
  Result<std::vector<PacketRecord>> LoadUnfinishedPackets() override;
  Result<std::vector<PacketProgress>> ListUnfinishedPackets() override;
  Result<AuditFacts> ReadAuditFacts() override;

  // Writes: kInternal (never routed here).
  Status Migrate() override;
  Result<UserRecord> CreateUser(std::string_view name) override;
  Result<Cents> Deposit(UserId user_id, Cents amount_cents, std::string_view request_id) override;
  Result<PacketRecord> CreatePacket(const domain::PacketSpec& spec,
                                    const std::vector<Cents>& shares, TimePoint created_at,
                                    TimePoint expires_at, std::string_view request_id) override;
  Status ApplyEvents(std::span<const domain::LedgerEvent> events,
                     const domain::PartitionOffsets& applied) override;
  Result<domain::PartitionOffsets> AppliedOffsets() override;

 private:
  // The replica when it may serve now, else nullptr.
  Ledger* Replica();
  template <class T, class Call>
  T Route(Call call);

  std::unique_ptr<Ledger> primary_;
  std::unique_ptr<Ledger> replica_;
  LagProbe lag_;
  std::function<std::unique_ptr<Ledger>()> open_replica_;
  ReadRouterOptions options_;
  std::shared_ptr<ReadRouterStats> stats_;
  std::chrono::steady_clock::time_point next_check_{};
  bool replica_ok_ = false;
};

}  // namespace redpacket::ledger
