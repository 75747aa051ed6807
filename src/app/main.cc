// redpacket: the command line — serve | worker | migrate | seed | token | audit.
#include <CLI/CLI.hpp>
#include <cstdlib>
#include <iostream>

#include "app/commands.h"
#include "app/config.h"

int main(int argc, char** argv) {
  using redpacket::app::Config;
  using redpacket::app::ConfigBinder;
  CLI::App app{
      "redpacket — a red packet (hongbao) service: send, grab, refund; every cent accounted for"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "redpacket 0.1.0");

  Config config;
  auto* serve = app.add_subcommand("serve", "Run the HTTP API server");
  ConfigBinder serve_binder(*serve, config,
                            {"mode",
                             "host",
                             "port",
                             "data_dir",
                             "redis_nodes",
                             "kafka_brokers",
                             "kafka_topic",
                             "kafka_linger_ms",
                             "mariadb_primary",
                             "mariadb_replica",
                             "mariadb_user",
                             "mariadb_password",
                             "mariadb_database",
                             "max_replica_lag_s",
                             "reconcile_interval_ms",
                             "outbox_claim_age_ms",
                             "journal_name",
                             "dev",
                             "threads",
                             "max_count",
                             "max_total_cents",
                             "min_expires_in_s",
                             "max_expires_in_s",
                             "token_secret",
                             "sweep_interval_ms",
                             "journal_gather_us",
                             "journal_writer",
                             "idle_timeout_ms",
                             "rate_limit_per_user",
                             "rate_limit_burst",
                             "header_timeout_ms",
                             "max_connections",
                             "max_connections_per_ip",
                             "event_streams_max",
                             "event_poll_ms",
                             "event_stream_buffer_bytes",
                             "shutdown_grace_ms",
                             "log_level"});

  // The worker has its own Config: its port's default differs from serve's.
  Config worker_config;
  worker_config.port = 9100;
  auto* worker = app.add_subcommand(
      "worker",
      "Cluster mode: consume grab and refund events from Kafka and credit them in MariaDB "
      "(serves /healthz, /readyz, /metrics on --port)");
  ConfigBinder worker_binder(
      *worker, worker_config,
      {"host", "port", "kafka_brokers", "kafka_topic", "kafka_group", "mariadb_primary",
       "mariadb_user", "mariadb_password", "mariadb_database", "worker_batch", "log_level"});

  auto* migrate = app.add_subcommand(
      "migrate",
      "Create or upgrade the ledger schema, then exit (embedded: SQLite in --data-dir; "
      "--mode cluster: the MariaDB primary)");
  ConfigBinder migrate_binder(*migrate, config,
                              {"mode", "data_dir", "mariadb_primary", "mariadb_user",
                               "mariadb_password", "mariadb_database", "log_level"});

  auto* audit = app.add_subcommand(
      "audit",
      "Check money conservation and every packet; exit 1 on a violation (embedded: --data-dir; "
      "--mode cluster: MariaDB and the Redis Cluster)");
  ConfigBinder audit_binder(*audit, config,
                            {"mode", "data_dir", "redis_nodes", "mariadb_primary", "mariadb_user",
                             "mariadb_password", "mariadb_database", "log_level"});
  std::int64_t audit_pending_deadline_s = 60;
  audit
      ->add_option("--pending-deadline-s", audit_pending_deadline_s,
                   "cluster: a grab or refund Redis decided this long ago that the ledger lacks "
                   "is a violation, not pending")
      ->capture_default_str()
      ->check(CLI::Range(std::int64_t{0}, std::int64_t{30 * 86400}));

  std::int64_t token_user = 0;
  std::int64_t token_ttl_s = 86400;
  bool token_admin = false;
  auto* token = app.add_subcommand("token", "Print a bearer token for a user");
  token->add_option("--user", token_user, "the user id the token speaks for")
      ->required()
      ->check(CLI::Range(std::int64_t{1}, (std::int64_t{1} << 53) - 1));
  token->add_option("--ttl-s", token_ttl_s, "seconds until the token expires")
      ->capture_default_str()
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{10LL * 365 * 86400}));
  token->add_flag("--admin", token_admin, "allow admin endpoints");
  ConfigBinder token_binder(*token, config, {"token_secret", "dev"});

  redpacket::app::SeedOptions seed_options;
  auto* seed =
      app.add_subcommand("seed", "Create demo users, deposits and packets on a running server");
  seed->add_option("--host", seed_options.host, "server address")->capture_default_str();
  seed->add_option("--port", seed_options.port, "server port")->capture_default_str();
  seed->add_option("--users", seed_options.users, "demo users to create")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
  seed->add_option("--packets", seed_options.packets, "demo packets to send")
      ->capture_default_str()
      ->check(CLI::Range(0, 100000));
  ConfigBinder seed_binder(*seed, config, {"token_secret", "dev"});

  CLI11_PARSE(app, argc, argv);
  try {
    if (serve->parsed()) {
      serve_binder.ApplyConfigFile();
      // --dev drives many requests from few callers (the load generator, the e2e tests, a
      // developer's curl loop on 127.0.0.1): the rate limit is off there unless asked for.
      if (config.dev && !serve_binder.IsSet("rate_limit_per_user")) config.rate_limit_per_user = 0;
      return redpacket::app::RunServe(config);
    }
    if (worker->parsed()) {
      worker_binder.ApplyConfigFile();
      return redpacket::app::RunWorker(worker_config);
    }
    if (migrate->parsed()) {
      migrate_binder.ApplyConfigFile();
      return redpacket::app::RunMigrate(config);
    }
    if (audit->parsed()) {
      audit_binder.ApplyConfigFile();
      return redpacket::app::RunAudit(config, std::chrono::seconds(audit_pending_deadline_s));
    }
    if (token->parsed()) {
      token_binder.ApplyConfigFile();
      return redpacket::app::RunToken(config, token_user, token_ttl_s, token_admin);
    }
    if (seed->parsed()) {
      seed_binder.ApplyConfigFile();
      return redpacket::app::RunSeed(config, seed_options);
    }
  } catch (const std::exception& error) {
    std::cerr << "redpacket: " << error.what() << "\n";
    return 2;
  }
  return 0;
}
