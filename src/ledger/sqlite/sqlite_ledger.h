// The embedded ledger: SQLite in WAL mode. See ledger/ledger.h for the contract.
#pragma once

#include <filesystem>
#include <memory>
#include <string_view>

#include "domain/clock.h"
#include "ledger/ledger.h"

namespace redpacket::ledger {

// Opens (creating if needed) the database file. Throws std::runtime_error with a clear message
// when the file cannot be opened (startup error). read_only: for audit. journal_name: whose
// applied position ApplyEvents/AppliedPosition/ReadAuditFacts use ("": the embedded server's
// journal; cluster-mode servers sharing one ledger file each name their own journal).
// background_writer: its write transactions let this process's other writers of the same file
// go first when both wait (the journal's applier, behind creates and deposits).
// clock: the time a deposit records (must outlive the ledger).
std::unique_ptr<Ledger> OpenSqliteLedger(const std::filesystem::path& file, bool read_only = false,
                                         std::string_view journal_name = {},
                                         bool background_writer = false,
                                         const domain::TimeSource& clock = domain::SystemTime());

}  // namespace redpacket::ledger
