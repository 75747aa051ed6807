// The SQLite ledger's class, shared by its source files: writes (sqlite_writes.cc), event
// application and set-aside messages (sqlite_apply.cc), reads and audit (sqlite_reads.cc).
// Private to ledger/sqlite. Blocking; NOT thread-safe: one connection, one thread.
#pragma once

#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "domain/clock.h"
#include "domain/idempotency.h"
#include "ledger/codec/event_batch.h"
#include "ledger/ledger.h"
#include "ledger/sqlite/sqlite_connection.h"

namespace redpacket::ledger::sqlite {

// Runs a statement for codec's shared reads (ledger_reads.h): prepared (cached), its integer
// arguments bound in order.
struct Statements {
  Connection& connection;
  Result<Query> operator()(std::string_view sql,
                           std::initializer_list<std::int64_t> arguments) const;
};

// Exactly-once application of events rests on the UNIQUE keys of grabs and refunds; every write
// is one transaction (WriteBatch: one for the batch, a savepoint per write).
class SqliteLedger final : public Ledger {
 public:
  SqliteLedger(const std::filesystem::path& file, bool read_only, std::string_view journal_name,
               const domain::TimeSource& clock);

  void set_background_writer(bool background) { connection_.set_background_writer(background); }

  // Writes (sqlite_writes.cc).
  Status Migrate() override;
  Result<UserRecord> CreateUser(std::string_view name) override;
  Result<Cents> Deposit(UserId user_id, Cents amount_cents, std::string_view request_id) override;
  Result<PacketRecord> CreatePacket(const domain::PacketSpec& spec,
                                    const std::vector<Cents>& shares, TimePoint created_at,
                                    TimePoint expires_at, std::string_view request_id) override;
  std::vector<WriteResult> WriteBatch(std::span<const Write> writes) override;

  // Events (sqlite_apply.cc).
  Status ApplyEvents(std::span<const domain::LedgerEvent> events,
                     const domain::PartitionOffsets& applied) override;
  Status SetAside(const SetAsideRecord& record, const domain::PartitionOffsets& applied) override;
  Result<domain::PartitionOffsets> AppliedOffsets() override;

  // Reads (sqlite_reads.cc).
  Result<Cents> Balance(UserId user_id) override;
  Result<BalanceSnapshot> BalanceWithOffsets(UserId user_id) override;
  Result<HistoryPage> History(UserId user_id, HistoryKind kind, int limit,
                              std::string_view cursor) override;
  Result<std::optional<PacketRecord>> GetPacket(PacketId packet_id) override;
  Result<std::vector<PacketRecord>> LoadUnfinishedPackets() override;
  Result<std::vector<PacketProgress>> ListUnfinishedPackets() override;
  Result<AuditFacts> ReadAuditFacts() override;

 private:
  // ---- writes: each runs inside the caller's write transaction ----
  Result<UserRecord> In(const CreateUserWrite& write);
  Result<Cents> In(const DepositWrite& write);
  Result<PacketRecord> In(const CreatePacketWrite& write);
  Result<bool> In(const CompleteLoadWrite& write);
  // The idempotency protocol's storage (domain/idempotency.h decides).
  Result<std::optional<std::int64_t>> FindIdempotent(const domain::IdempotentRequest& request);
  Status RecordIdempotent(const domain::IdempotentRequest& request, std::int64_t result);
  // Creates the account on its first credit.
  Status Credit(UserId user_id, Cents amount_cents);
  // A counter of the meta table (`absent` when it has no row yet).
  Result<std::int64_t> GetMeta(std::string_view key, std::int64_t absent);
  Status SetMeta(std::string_view key, std::int64_t value);

  // ---- events: inside ApplyEvents' transaction ----
  Status ApplyEventsIn(std::span<const domain::LedgerEvent> events,
                       const domain::PartitionOffsets& applied);
  Status ApplyEvent(const domain::LedgerEvent& event, codec::PacketDeltas& deltas);
  // The packet's shape (cached), or nullptr for an unknown id.
  Result<const domain::PacketShape*> FindShape(PacketId packet_id);
  // Each partition's offset, never moved back.
  Status RecordOffsets(const domain::PartitionOffsets& applied);
  // The meta key of a partition's applied offset.
  std::string OffsetKey(std::int32_t partition) const;
  // Every partition's offset of this ledger's stream; the caller holds a transaction.
  Result<domain::PartitionOffsets> ReadAppliedOffsets();

  Result<std::int64_t> SelectInt(std::string_view sql,
                                 std::initializer_list<std::int64_t> arguments,
                                 std::int64_t absent);

  Connection connection_;
  const domain::TimeSource& clock_;  // when a deposit happened
  // Each journal applied to this ledger records its own position: the positions of two journals
  // (two cluster-mode servers sharing the ledger) are unrelated counters.
  std::string applied_position_key_;
  codec::PacketShapeCache shapes_;
};

// SQL every part uses.
inline constexpr char kSelectBalance[] = "SELECT balance_cents FROM accounts WHERE user_id = ?";

}  // namespace redpacket::ledger::sqlite
