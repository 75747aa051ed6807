// The MariaDB ledger's schema: versioned migrations, applied in order, recorded in schema_version.
// Blocking; NOT thread-safe (one connection), but safe to run from several servers at once.
#pragma once

#include "ledger/mariadb/mariadb_connection.h"

namespace redpacket::ledger::mariadb {

// Brings the schema to the latest version. A database already there is only read (so this also
// succeeds on a read-only replica that replicated the schema). kInternal when the database is
// newer than this binary.
Status MigrateSchema(Connection& connection);

}  // namespace redpacket::ledger::mariadb
