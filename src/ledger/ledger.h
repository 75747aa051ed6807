// The ledger: durable accounts, deposits, packets (with their shares), grabs and refunds.
// Interfaces only: ledger/sqlite (embedded) and ledger/mariadb (cluster: a primary for writes, a
// replica for reads) implement them. A LedgerWriter takes every write and the reads that must
// see its own writes; a LedgerReader serves what may lag (details, history, balance).
// Every call blocks. An instance is NOT thread-safe: one thread drives it.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "domain/packet.h"
#include "domain/records.h"
#include "domain/status.h"
#include "domain/types.h"

namespace redpacket::ledger {

using domain::Cents;
using domain::PacketId;
using domain::Result;
using domain::Status;
using domain::TimePoint;
using domain::UserId;

// The record types live in domain/records.h; these names keep the ledger's callers unchanged.
using domain::HistoryItem;
using domain::HistoryKind;
using domain::HistoryPage;
using domain::PacketProgress;
using domain::PacketRecord;
using domain::UserRecord;

// The writes a LedgerWriter can group into one transaction (WriteBatch); each names the answer
// it gets.
struct CreateUserWrite {
  using Answer = Result<UserRecord>;
  std::string name;
};
struct DepositWrite {
  using Answer = Result<Cents>;
  UserId user_id = 0;
  Cents amount_cents = 0;
  std::string request_id;
};
struct CreatePacketWrite {
  using Answer = Result<PacketRecord>;
  domain::PacketSpec spec;
  std::vector<Cents> shares;
  TimePoint created_at;
  TimePoint expires_at;
  std::string request_id;
};
// The packet is in the hot-path store: its load intent is done (LedgerWriter::CompleteLoad).
struct CompleteLoadWrite {
  using Answer = Result<bool>;
  PacketId packet_id = 0;
};
using Write = std::variant<CreateUserWrite, DepositWrite, CreatePacketWrite, CompleteLoadWrite>;
// The answer to each Write: the Answer of its kind.
using WriteResult = std::variant<CreateUserWrite::Answer, DepositWrite::Answer,
                                 CreatePacketWrite::Answer, CompleteLoadWrite::Answer>;
// `error` as the answer the kind of `write` expects.
inline WriteResult FailedWrite(const Write& write, const domain::Error& error) {
  return std::visit(
      [&error](const auto& kind) -> WriteResult {
        using Answer = typename std::decay_t<decltype(kind)>::Answer;
        return WriteResult(std::in_place_type<Answer>, error);
      },
      write);
}

// A balance read together with the applied offsets of the same snapshot: the embedded server
// adds the credits beyond those offsets (pending) without stopping the applier.
struct BalanceSnapshot {
  Cents balance_cents = 0;
  domain::PartitionOffsets applied_offsets;  // empty when the ledger cannot tell
};

// A message the worker set aside instead of applying it: an event the ledger's rules refuse on
// its own (ApplyEvents answered kRefused), or bytes that are no event at all. Kept whole, with
// its place on the bus and the reason, in the ledger itself (see LedgerWriter::SetAside).
struct SetAsideRecord {
  std::int32_t partition = 0;
  std::uint64_t offset = 0;
  std::string event_id;  // empty when the message could not be decoded
  std::string payload;   // the event in the bus's JSON (docs/API.md "Events"), or the bytes as read
  std::string reason;
  TimePoint at;  // when it was set aside
};

// What `redpacket audit` checks, read in one consistent snapshot.
struct AuditFacts {
  Cents deposits_cents = 0;  // sum of all deposits
  Cents balances_cents = 0;  // sum of all account balances
  struct Packet {
    PacketId packet_id = 0;
    UserId sender_id = 0;
    Cents total_cents = 0;
    std::int64_t count = 0;
    domain::PacketStatus status = domain::PacketStatus::kOpen;
    std::vector<Cents> shares;
    std::vector<domain::Grab> grabs;  // ordered by seq
    std::optional<Cents> refund_cents;
  };
  std::vector<Packet> packets;
  // Users whose balance differs from deposits - sent + received + refunded.
  struct Mismatch {
    UserId user_id = 0;
    Cents balance_cents = 0;
    Cents expected_cents = 0;
  };
  std::vector<Mismatch> account_mismatches;
  domain::PartitionOffsets applied_offsets;  // of the stream this ledger applies
  // Every message the worker set aside (of any stream): money decided and never credited.
  std::vector<SetAsideRecord> set_aside;
};

// Errors of every call: kBadRequest / kInsufficientFunds / kIdempotencyConflict for the caller's
// mistakes, kUnavailable for what may succeed on a retry (the database unreachable, a deadlock,
// the disk full, an I/O error, the database read-only), kInternal for data that contradicts an
// invariant (never retried as is), kRefused for an event the rules refuse (ApplyEvents).
class LedgerReader {
 public:
  virtual ~LedgerReader() = default;

  // 0 for a user never seen.
  virtual Result<Cents> Balance(UserId user_id) = 0;

  // Balance() and the applied offsets read in one snapshot. The default reads the balance only.
  virtual Result<BalanceSnapshot> BalanceWithOffsets(UserId user_id) {
    auto balance = Balance(user_id);
    if (!balance.ok()) return balance.error();
    return BalanceSnapshot{*balance, {}};
  }

  // Newest first; cursor is the next_cursor of the previous page (empty for the first page).
  // A malformed cursor is a 400.
  virtual Result<HistoryPage> History(UserId user_id, HistoryKind kind, int limit,
                                      std::string_view cursor) = 0;

  // The packet with its shares and applied grabs, or nullopt for an unknown id.
  virtual Result<std::optional<PacketRecord>> GetPacket(PacketId packet_id) = 0;

  // Every packet that may still change: status open or expired (not exhausted, not refunded),
  // with shares and grabs. Used on start to rebuild the in-memory engine, and by the reconciler.
  virtual Result<std::vector<PacketRecord>> LoadUnfinishedPackets() = 0;

  // The same packets (open or expired), without shares or grabs, ordered by id.
  virtual Result<std::vector<PacketProgress>> ListUnfinishedPackets() = 0;

  virtual Result<AuditFacts> ReadAuditFacts() = 0;
};

class LedgerWriter {
 public:
  virtual ~LedgerWriter() = default;

  // Creates or upgrades the schema. Idempotent.
  virtual Status Migrate() = 0;

  // Creates a user with balance 0 and the lowest id at or above the ledger's own user counter
  // that no account holds; the counter then moves past it. Accounts made with an explicit id
  // (a deposit, a credit) never move the counter: an id named by a token or a deposit, even
  // 2^53 - 1, never blocks CreateUser.
  virtual Result<UserRecord> CreateUser(std::string_view name) = 0;

  // Credits `amount_cents` (> 0) and returns the new balance; creates the account if it is new.
  // kBadRequest, writing nothing, when the sum of every deposit would pass
  // domain::kMaxTotalDepositsCents.
  // A non-empty request_id makes it idempotent per (user, request_id): a repeat with the same
  // amount returns the balance the first call returned and credits nothing; a repeat with
  // another amount is kIdempotencyConflict.
  virtual Result<Cents> Deposit(UserId user_id, Cents amount_cents,
                                std::string_view request_id) = 0;

  // In one transaction: debits the sender by spec.total_cents (402 insufficient_funds when the
  // balance is short; nothing is written then), assigns the next packet id and stores the packet
  // with its shares. A non-empty request_id makes it idempotent per (sender, request_id): a
  // repeat of the same spec returns the first packet and debits nothing; a repeat with another
  // spec is kIdempotencyConflict.
  virtual Result<PacketRecord> CreatePacket(const domain::PacketSpec& spec,
                                            const std::vector<Cents>& shares, TimePoint created_at,
                                            TimePoint expires_at, std::string_view request_id) = 0;

  // Group commit: each write of the batch runs as if alone (same rules and answers as
  // CreateUser/Deposit/CreatePacket; one that fails changes nothing and does not fail the
  // others; a later write sees the earlier ones, so a request_id repeated within the batch is
  // answered as a repeat), and the writes that succeeded become durable together. An answer is
  // final only when the call returns: if the shared commit fails, every write of the batch
  // answers that error and none is applied. The default runs them one transaction each.
  virtual std::vector<WriteResult> WriteBatch(std::span<const Write> writes);

  // In one transaction: applies each event exactly once (a grab is unique by (packet_id, user_id),
  // a refund by packet_id; a repeat is skipped, never credited twice), credits the account
  // (creating it if new), moves the packet to exhausted / refunded when that is what the events
  // say, and records `applied` (per partition, the offset of the batch's last event; an offset
  // never moves back). Any event may be passed again (redelivery, crash recovery) and changes
  // nothing. An event that the ledger's rules refuse on its own (unknown packet, seq out of
  // range, amount not its share, refund to another user than the sender or of more than is
  // left, a second user on a paid share) fails the whole batch with kRefused naming the event.
  // Any other error (the disk full, an I/O error, the database read-only or unreachable, a
  // deadlock, a damaged file) is the ledger unable to write now: never kRefused. Either way
  // nothing of the batch is written.
  virtual Status ApplyEvents(std::span<const domain::LedgerEvent> events,
                             const domain::PartitionOffsets& applied) = 0;

  // In one transaction: keeps `record` (unique per stream, partition and offset: a repeat
  // changes nothing) and records `applied` as ApplyEvents does. So an applied offset moves
  // past a message the ledger refused only in the transaction that keeps it: a failure (the
  // disk full) writes neither, and the message is handled again. The default (a ledger that
  // keeps no such records) fails with kInternal.
  virtual Status SetAside(const SetAsideRecord& record, const domain::PartitionOffsets& applied);

  // What ApplyEvents recorded so far (empty on a new ledger).
  virtual Result<domain::PartitionOffsets> AppliedOffsets() = 0;

  // Load intents (cluster mode, where the hot-path store lives apart from the ledger): a packet
  // whose debit is committed must end up loaded in the store. CreatePacket records an intent in
  // its own transaction; the creator completes it once the store has the packet; a packet found
  // lost gets one again (RequestLoad); any server's loader completes what is pending. No timing
  // decides anything: an intent is done when it is completed. A ledger whose store is rebuilt
  // from it at start (embedded) keeps none: these do nothing and nothing is pending.
  virtual Status RequestLoad(PacketId packet_id) {
    (void)packet_id;
    return {};
  }
  virtual Status CompleteLoad(PacketId packet_id) {
    (void)packet_id;
    return {};
  }
  // Up to `limit` pending intents, oldest packet first.
  virtual Result<std::vector<PacketId>> PendingLoads(std::size_t limit) {
    (void)limit;
    return std::vector<PacketId>{};
  }
};

// Both sides on one connection (SQLite's file, MariaDB's primary).
class Ledger : public LedgerWriter, public LedgerReader {};

inline Status LedgerWriter::SetAside(const SetAsideRecord& record,
                                     const domain::PartitionOffsets& applied) {
  (void)record;
  (void)applied;
  return domain::MakeError(domain::ErrorCode::kInternal, "this ledger keeps no set-aside events");
}

inline std::vector<WriteResult> LedgerWriter::WriteBatch(std::span<const Write> writes) {
  std::vector<WriteResult> results;
  results.reserve(writes.size());
  struct Run {
    LedgerWriter& ledger;
    WriteResult operator()(const CreateUserWrite& user) const {
      return ledger.CreateUser(user.name);
    }
    WriteResult operator()(const DepositWrite& deposit) const {
      return ledger.Deposit(deposit.user_id, deposit.amount_cents, deposit.request_id);
    }
    WriteResult operator()(const CreatePacketWrite& packet) const {
      return ledger.CreatePacket(packet.spec, packet.shares, packet.created_at, packet.expires_at,
                                 packet.request_id);
    }
    WriteResult operator()(const CompleteLoadWrite& load) const {
      Status done = ledger.CompleteLoad(load.packet_id);
      return done.ok() ? Result<bool>(true) : Result<bool>(done.error());
    }
  };
  for (const Write& write : writes) results.push_back(std::visit(Run{*this}, write));
  return results;
}

}  // namespace redpacket::ledger
