// The replica's lag for the replication lag metric: SHOW SLAVE STATUS -> Seconds_Behind_Master.
// Needs the SLAVE MONITOR privilege (scripts/mariadb grants it to the app user).
#include <fmt/format.h>

#include "ledger/mariadb/mariadb_connection.h"
#include "ledger/mariadb/mariadb_ledger.h"

namespace redpacket::ledger {

class ReplicaLagProbe::Impl {
 public:
  explicit Impl(MariaDbOptions options) : connection(std::move(options)) {}
  mariadb::Connection connection;
};

ReplicaLagProbe::ReplicaLagProbe(MariaDbOptions replica)
    : impl_(std::make_unique<Impl>(std::move(replica))) {}
ReplicaLagProbe::~ReplicaLagProbe() = default;

Result<std::optional<std::int64_t>> ReplicaLagProbe::LagSeconds() {
  mariadb::Connection& connection = impl_->connection;
  REDPACKET_MARIADB_TRY(connection.EnsureConnected());
  auto rows = connection.Query("SHOW SLAVE STATUS");
  if (!rows.ok()) return rows.error();
  if (!rows->Next()) return std::optional<std::int64_t>();  // not a replica
  const int column = rows->ColumnIndex("Seconds_Behind_Master");
  if (column < 0) {
    return domain::MakeError(domain::ErrorCode::kInternal,
                             "SHOW SLAVE STATUS has no Seconds_Behind_Master column");
  }
  return rows->OptionalInt(column);  // NULL while a replication thread is stopped
}

Result<std::optional<std::int64_t>> ReplicaLagSeconds(const MariaDbOptions& replica) {
  return ReplicaLagProbe(replica).LagSeconds();
}

}  // namespace redpacket::ledger
