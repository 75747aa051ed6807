// The SQLite ledger's schema and its migrations, versioned in the schema_version table.
#pragma once

#include "domain/status.h"
#include "ledger/sqlite/sqlite_connection.h"

namespace redpacket::ledger::sqlite {

// Brings the schema to the latest version in one write transaction; a no-op when it already is.
// On a read-only connection it only checks that the schema is the latest.
domain::Status MigrateSchema(Connection& connection);

}  // namespace redpacket::ledger::sqlite
