// The cluster-mode ledger on MariaDB: a primary takes every write, a replica serves the reads that
// may lag. See ledger/ledger.h for the contract. Every call blocks (network round trips); an
// instance is NOT thread-safe: one thread drives it (open one per SQL thread).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "domain/clock.h"
#include "ledger/ledger.h"

namespace redpacket::ledger {

// Defaults are what scripts/mariadb starts: the primary on 127.0.0.1:3307 (the replica on :3308),
// user/password/database "redpacket".
struct MariaDbOptions {
  std::string host = "127.0.0.1";
  int port = 3307;
  std::string user = "redpacket";
  std::string password = "redpacket";
  std::string database = "redpacket";
  std::chrono::seconds connect_timeout{5};
  std::chrono::seconds read_timeout{30};
  std::chrono::seconds write_timeout{30};
  // Whose applied offsets ApplyEvents / AppliedOffsets / ReadAuditFacts use: the Kafka topic.
  std::string stream = "red_packet_transactions";
  // The time deposits and load requests record (must outlive the ledger).
  const domain::TimeSource* clock = &domain::SystemTime();
};

// "host:port", for messages and logs.
std::string MariaDbAddress(const MariaDbOptions& options);

// Connects (a startup step). Throws std::runtime_error("cannot reach MariaDB at host:port: ...")
// when the server cannot be reached or refuses the login. A connection lost later is
// kUnavailable on the call that sees it, and the next call reconnects.
// Opened on the replica, the same class serves the LedgerReader side (writes fail: read_only).
std::unique_ptr<Ledger> OpenMariaDbLedger(const MariaDbOptions& options);

// How far a replica is behind its primary, for the replication lag metric. Keeps one connection
// (reconnects after a loss). Blocking; NOT thread-safe.
class ReplicaLagProbe {
 public:
  explicit ReplicaLagProbe(MariaDbOptions replica);
  ~ReplicaLagProbe();
  ReplicaLagProbe(const ReplicaLagProbe&) = delete;
  ReplicaLagProbe& operator=(const ReplicaLagProbe&) = delete;

  // SHOW SLAVE STATUS -> Seconds_Behind_Master; nullopt when the server is not replicating
  // (no replication configured, or a replication thread stopped). kUnavailable when the replica
  // cannot be reached.
  Result<std::optional<std::int64_t>> LagSeconds();

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

// One-shot form of ReplicaLagProbe::LagSeconds (connects, asks, disconnects).
Result<std::optional<std::int64_t>> ReplicaLagSeconds(const MariaDbOptions& replica);

}  // namespace redpacket::ledger
