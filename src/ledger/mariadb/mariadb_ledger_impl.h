// The MariaDB ledger's class, shared by its source files: writes (mariadb_ledger.cc), event
// application (mariadb_apply.cc), reads and audit (mariadb_reads.cc). Private to ledger/mariadb.
// Blocking; NOT thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "domain/idempotency.h"
#include "ledger/codec/event_batch.h"
#include "ledger/codec/ledger_rows.h"
#include "ledger/mariadb/mariadb_connection.h"

namespace redpacket::ledger::mariadb {

// Runs a statement for codec's shared reads (ledger_reads.h): its `?` replaced by the integer
// arguments, in order (the text protocol has no parameters).
struct Statements {
  Connection& connection;
  Result<Rows> operator()(std::string_view sql,
                          std::initializer_list<std::int64_t> arguments) const {
    return connection.Query(codec::WithArguments(sql, arguments));
  }
};

class MariaDbLedger final : public Ledger {
 public:
  explicit MariaDbLedger(const MariaDbOptions& options)
      : connection_(options), clock_(*options.clock) {}
  Status Connect() { return connection_.EnsureConnected(); }

  // Writes (mariadb_ledger.cc).
  Status Migrate() override;
  Result<UserRecord> CreateUser(std::string_view name) override;
  Result<Cents> Deposit(UserId user_id, Cents amount_cents, std::string_view request_id) override;
  Result<PacketRecord> CreatePacket(const domain::PacketSpec& spec,
                                    const std::vector<Cents>& shares, TimePoint created_at,
                                    TimePoint expires_at, std::string_view request_id) override;

  // Load intents (mariadb_ledger.cc): the packet_loads table.
  Status RequestLoad(PacketId packet_id) override;
  Status CompleteLoad(PacketId packet_id) override;
  Result<std::vector<PacketId>> PendingLoads(std::size_t limit) override;

  // Events (mariadb_apply.cc).
  Status ApplyEvents(std::span<const domain::LedgerEvent> events,
                     const domain::PartitionOffsets& applied) override;
  Result<domain::PartitionOffsets> AppliedOffsets() override;
  Status SetAside(const SetAsideRecord& record, const domain::PartitionOffsets& applied) override;

  // Reads (mariadb_reads.cc).
  Result<Cents> Balance(UserId user_id) override;
  Result<HistoryPage> History(UserId user_id, HistoryKind kind, int limit,
                              std::string_view cursor) override;
  Result<std::optional<PacketRecord>> GetPacket(PacketId packet_id) override;
  Result<std::vector<PacketRecord>> LoadUnfinishedPackets() override;
  Result<std::vector<PacketProgress>> ListUnfinishedPackets() override;
  Result<AuditFacts> ReadAuditFacts() override;

 private:
  // Locks the batch's packets (FOR UPDATE, in id order: concurrent batches on one packet run one
  // after the other instead of deadlocking) and loads the shapes not cached yet.
  Status LockPackets(const std::vector<PacketId>& packet_ids);
  // The idempotency protocol's storage (domain/idempotency.h decides). The row is locked.
  Result<std::optional<std::int64_t>> FindIdempotent(const domain::IdempotentRequest& request);
  Status RecordIdempotent(const domain::IdempotentRequest& request, std::int64_t result);
  // Every partition's offset of this ledger's stream.
  Result<domain::PartitionOffsets> ReadAppliedOffsets();
  // Records each partition's offset (never moved back); the caller holds the transaction.
  Status RecordOffsets(const domain::PartitionOffsets& applied);
  // The body of ApplyEvents; the caller holds the transaction.
  Status ApplyEventsIn(std::span<const domain::LedgerEvent> events,
                       const domain::PartitionOffsets& applied);
  // A ledger counter's value, its row locked until the transaction ends.
  Result<std::int64_t> LockCounter(std::string_view name);
  Result<std::int64_t> SelectInt(std::string_view sql, std::int64_t absent);

  Connection connection_;
  const domain::TimeSource& clock_;  // when a deposit or a load request happened
  codec::PacketShapeCache shapes_;
};

}  // namespace redpacket::ledger::mariadb
