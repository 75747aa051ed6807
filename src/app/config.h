// Configuration of `redpacket serve` and the tools: every key can come from a flag (--max-count),
// the environment (REDPACKET_MAX_COUNT) or a TOML file (--config, key max_count), in that order of
// precedence, over the defaults below.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "domain/clock.h"
#include "domain/packet.h"

namespace redpacket::http {
struct ApiOptions;
}

namespace redpacket::app {

struct Config {
  std::string mode = "embedded";
  std::string host = "127.0.0.1";
  std::uint16_t port = 8080;
  std::string data_dir = "./data";
  // Cluster mode. Every address defaults to what the project's scripts start on one machine
  // (scripts/redis-cluster, scripts/kafka, scripts/mariadb), so no flag is needed there.
  // "host:port[,host:port...]", any reachable node of the Redis Cluster.
  std::string redis_nodes = "127.0.0.1:7001";
  std::string kafka_brokers = "127.0.0.1:9092";
  std::string kafka_topic = "red_packet_transactions";
  std::int64_t kafka_linger_ms = 50;
  std::string kafka_group = "redpacket-worker";
  std::string mariadb_primary = "127.0.0.1:3307";
  std::string mariadb_replica = "127.0.0.1:3308";  // "": read from the primary
  std::string mariadb_user = "redpacket";
  std::string mariadb_password = "redpacket";
  std::string mariadb_database = "redpacket";
  // Reads go to the primary while the replica is this far behind (or down).
  std::int64_t max_replica_lag_s = 5;
  // On the server holding the sweeper lease: the check comparing Redis with the ledger runs this
  // often (it reports); the relay's recovery publishes outbox entries older than the claim age.
  std::int64_t reconcile_interval_ms = 10000;
  std::int64_t outbox_claim_age_ms = 5000;
  // `redpacket worker`: events per ledger transaction.
  std::int64_t worker_batch = 1000;
  // The journal is data_dir/journal, or data_dir/journal-<name>: API servers sharing a data_dir
  // (cluster mode, one SQLite ledger) each need their own.
  std::string journal_name;
  bool dev = false;
  int threads = 0;  // 0: one per core
  domain::Limits limits;
  std::string token_secret;
  std::int64_t sweep_interval_ms = 1000;
  std::int64_t journal_gather_us = 100;
  // "thread": a writer thread and a completion thread; "loop": the first I/O thread writes and
  // fsyncs the journal through io_uring (docs/decisions.md §27: no faster here, so not default).
  std::string journal_writer = "thread";
  std::int64_t idle_timeout_ms = 60000;
  // Server-side limits (README "Configuration"). The rate limit is per caller: requests a second
  // and burst; 0 turns it off, and --dev turns it off unless rate_limit_per_user is set.
  std::int64_t rate_limit_per_user = 20;
  std::int64_t rate_limit_burst = 40;
  std::int64_t header_timeout_ms = 10000;  // 0: no deadline for a request head
  // Capped further by the open-file limit (RLIMIT_NOFILE) at start. 0: only that.
  std::int64_t max_connections = 100000;
  std::int64_t max_connections_per_ip = 10000;  // 0: no cap
  // Live event streams (GET /v1/packets/{id}/events): open streams at most (503 beyond), how
  // often their packets are re-read (grabs through other servers, expiry), and the bytes a
  // stream may have waiting for a slow reader before it is dropped.
  std::int64_t event_streams_max = 10000;
  std::int64_t event_poll_ms = 250;
  std::int64_t event_stream_buffer_bytes = 64 * 1024;
  std::int64_t shutdown_grace_ms = 10000;
  std::string log_level = "info";
  std::string config_file;
};

// Registers the options named in `keys` (TOML names, e.g. "max_count") on `command`, bound to
// `config`, with their env names. `--config FILE` is always added. Call ApplyConfigFile after
// parsing.
class ConfigBinder {
 public:
  ConfigBinder(CLI::App& command, Config& config, const std::vector<std::string>& keys);
  // Reads --config (if given) and sets every key that no flag or env variable set. Throws
  // CLI::ValidationError-like std::runtime_error on an unknown key or a wrong type.
  void ApplyConfigFile();
  // Whether `key` was given by a flag, env variable or the file (rather than left at its default).
  bool IsSet(const std::string& key) const;

 private:
  struct Binding {
    std::string key;
    CLI::Option* option;
    std::function<void(const std::string&)> set_from_text;
    bool set_from_file = false;
  };
  CLI::App& command_;
  Config& config_;
  std::vector<Binding> bindings_;
};

// The secrets of tokens, newest first: the configured list ("new,old": sign with the first, accept
// any), or in --dev a fixed development secret. Throws std::runtime_error when neither is
// available or the list has an empty entry.
std::vector<std::string> EffectiveTokenSecrets(const Config& config);
inline constexpr const char* kDevTokenSecret = "redpacket-dev-secret";

// The API's options as `serve` sets them from the configuration: --dev, the token secrets, the
// rate limit; `clock` is the "now" of a token's expiry (it must outlive the Api).
http::ApiOptions ApiOptionsFrom(const Config& config, const domain::TimeSource& clock);

}  // namespace redpacket::app
