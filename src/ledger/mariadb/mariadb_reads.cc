// The MariaDB ledger's reads: balance, history pages, packets with their grabs, the packets a
// restart reloads, and the audit facts (one consistent snapshot). Work on the primary and on a
// replica alike. The queries and rows are codec's (ledger_reads.h), shared with SQLite.
#include <fmt/format.h>

#include <utility>

#include "ledger/codec/ledger_reads.h"
#include "ledger/mariadb/mariadb_ledger_impl.h"

namespace redpacket::ledger::mariadb {
namespace {

// Runs `read(run)` in one snapshot: every statement of it sees the same state.
template <class Read>
auto InSnapshot(Connection& connection, Read read) {
  return codec::ReadInOneSnapshot<Statements>(
      connection, Transaction::Begin(connection, Transaction::Mode::kReadSnapshot),
      std::move(read));
}

}  // namespace

Result<Cents> MariaDbLedger::Balance(UserId user_id) {
  REDPACKET_MARIADB_TRY(connection_.EnsureConnected());
  return SelectInt(fmt::format("SELECT balance_cents FROM accounts WHERE user_id = {}", user_id),
                   0);
}

Result<HistoryPage> MariaDbLedger::History(UserId user_id, HistoryKind kind, int limit,
                                           std::string_view cursor) {
  // A malformed cursor is refused before the database is asked.
  if (auto before = codec::ParseCursor(cursor); !before.ok()) return before.error();
  REDPACKET_MARIADB_TRY(connection_.EnsureConnected());
  Statements run{connection_};
  return codec::ReadHistory(run, user_id, kind, limit, cursor);
}

Result<std::optional<PacketRecord>> MariaDbLedger::GetPacket(PacketId packet_id) {
  return InSnapshot(connection_,
                    [&](Statements& run) { return codec::ReadPacket(run, packet_id); });
}

Result<std::vector<PacketRecord>> MariaDbLedger::LoadUnfinishedPackets() {
  return InSnapshot(connection_, [](Statements& run) { return codec::ReadUnfinishedPackets(run); });
}

Result<std::vector<PacketProgress>> MariaDbLedger::ListUnfinishedPackets() {
  Statements run{connection_};
  return codec::ReadUnfinishedProgress(run);
}

Result<AuditFacts> MariaDbLedger::ReadAuditFacts() {
  // One snapshot: every fact comes from the same state, so a concurrent ApplyEvents cannot make
  // the sums disagree.
  return InSnapshot(connection_, [&](Statements& run) -> Result<AuditFacts> {
    return codec::ReadAuditFacts(run, [this] { return ReadAppliedOffsets(); });
  });
}

}  // namespace redpacket::ledger::mariadb
