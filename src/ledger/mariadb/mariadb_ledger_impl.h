// The MariaDB ledger's class, shared by its source files: writes (mariadb_ledger.cc), event
// application (mariadb_apply.cc), reads and audit (mariadb_reads.cc). Private to ledger/mariadb.
// Blocking; NOT thread-safe.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "ledger/mariadb/mariadb_connection.h"

namespace redpacket::ledger::mariadb {

// "Should never happen": the stored data contradicts an invariant.
domain::Error Corrupt(std::string message);
// An event the ledger's rules refuse on its own (ApplyEvents): the worker sets it aside.
domain::Error Refused(std::string message);

// The column list every query building a PacketRecord selects, from `packets AS p` joined with
// `packet_shares AS s` (see ReadPacketRow).
inline constexpr std::string_view kPacketColumns =
    "p.packet_id, p.sender_id, p.kind, p.greeting, p.total_cents, p.count, p.expires_in_s, "
    "p.receiver_id, p.created_at_ms, p.expires_at_ms, p.status, p.refund_cents, s.shares";
Result<PacketRecord> ReadPacketRow(const Rows& row);
// The grab columns packet_id, user_id, amount_cents, seq, grabbed_at_ms.
domain::Grab ReadGrabRow(const Rows& row);

class MariaDbLedger final : public Ledger {
 public:
  explicit MariaDbLedger(const MariaDbOptions& options) : connection_(options) {}
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
  // The immutable part of a packet that validating an event needs.
  struct PacketShape {
    UserId sender_id = 0;
    Cents total_cents = 0;
    std::vector<Cents> shares;
  };

  // Locks the batch's packets (FOR UPDATE, in id order: concurrent batches on one packet run one
  // after the other instead of deadlocking) and loads the shapes not cached yet.
  Status LockPackets(const std::vector<PacketId>& packet_ids);
  // The stored result of an earlier call with this key (locked), if any; kIdempotencyConflict
  // when that call was another request.
  Result<std::optional<std::int64_t>> FindIdempotent(UserId user_id, std::string_view request_id,
                                                     std::string_view kind,
                                                     std::string_view fingerprint);
  Status RecordIdempotent(UserId user_id, std::string_view request_id, std::string_view kind,
                          std::int64_t result, std::string_view fingerprint);
  // The packet with its grabs; the caller holds a transaction so both reads agree.
  Result<std::optional<PacketRecord>> ReadPacket(PacketId packet_id);
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
  // Shapes never change after creation and packet ids are never reused: the cache cannot go
  // stale. Bounded by kMaxCachedShares.
  std::unordered_map<PacketId, PacketShape> shapes_;
  std::size_t cached_shares_ = 0;
};

}  // namespace redpacket::ledger::mariadb
