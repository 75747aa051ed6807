// The SQLite ledger's reads: balance (with the applied offsets of the same snapshot), history
// pages, packets with their grabs, the packets a restart reloads, and the audit facts. Each read
// of several statements runs in one read transaction, so they agree; the queries and rows are
// codec's (ledger_reads.h), shared with MariaDB.
#include <utility>

#include "ledger/codec/ledger_reads.h"
#include "ledger/sqlite/sqlite_ledger_impl.h"

namespace redpacket::ledger::sqlite {
namespace {

// Runs `read(run)` in one read transaction: every statement of it sees the same snapshot.
template <class Read>
auto InReadTransaction(Connection& connection, Read read) {
  return codec::ReadInOneSnapshot<Statements>(
      connection, Transaction::Begin(connection, Transaction::Mode::kRead), std::move(read));
}

}  // namespace

Result<Cents> SqliteLedger::Balance(UserId user_id) {
  return SelectInt(kSelectBalance, {user_id}, 0);
}

Result<BalanceSnapshot> SqliteLedger::BalanceWithOffsets(UserId user_id) {
  return InReadTransaction(connection_, [&](Statements& run) -> Result<BalanceSnapshot> {
    auto balance = codec::SelectInt(run, kSelectBalance, {user_id}, 0);
    if (!balance.ok()) return balance.error();
    auto offsets = ReadAppliedOffsets();
    if (!offsets.ok()) return offsets.error();
    return BalanceSnapshot{*balance, std::move(*offsets)};
  });
}

Result<HistoryPage> SqliteLedger::History(UserId user_id, HistoryKind kind, int limit,
                                          std::string_view cursor) {
  Statements run{connection_};
  return codec::ReadHistory(run, user_id, kind, limit, cursor);
}

Result<std::optional<PacketRecord>> SqliteLedger::GetPacket(PacketId packet_id) {
  return InReadTransaction(connection_,
                           [&](Statements& run) { return codec::ReadPacket(run, packet_id); });
}

Result<std::vector<PacketRecord>> SqliteLedger::LoadUnfinishedPackets() {
  return InReadTransaction(connection_,
                           [](Statements& run) { return codec::ReadUnfinishedPackets(run); });
}

Result<std::vector<PacketProgress>> SqliteLedger::ListUnfinishedPackets() {
  Statements run{connection_};
  return codec::ReadUnfinishedProgress(run);
}

Result<AuditFacts> SqliteLedger::ReadAuditFacts() {
  // One read transaction: every fact comes from the same snapshot, so a concurrent ApplyEvents
  // cannot make the sums disagree.
  return InReadTransaction(connection_, [&](Statements& run) -> Result<AuditFacts> {
    return codec::ReadAuditFacts(run, [this] { return ReadAppliedOffsets(); });
  });
}

}  // namespace redpacket::ledger::sqlite
