// ConfigBinder: CLI11 flags with env names, then the TOML file fills what they left unset.
#include "app/config.h"

#include <fmt/format.h>
#include <toml++/toml.h>

#include <stdexcept>

#include "http/access/token.h"
#include "http/handlers/api.h"

namespace redpacket::app {
namespace {

std::string EnvName(const std::string& key) {
  std::string name = "REDPACKET_";
  for (char c : key) name += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return name;
}

std::string FlagName(const std::string& key) {
  std::string name = "--";
  for (char c : key) name += c == '_' ? '-' : c;
  return name;
}

template <class T>
T ParseNumber(const std::string& key, const std::string& text) {
  T value{};
  if (!CLI::detail::lexical_conversion<T, T>({text}, value)) {
    throw std::runtime_error(fmt::format("config key {}: '{}' is not a valid number", key, text));
  }
  return value;
}

}  // namespace

ConfigBinder::ConfigBinder(CLI::App& command, Config& config, const std::vector<std::string>& keys)
    : command_(command), config_(config) {
  command
      .add_option("--config", config.config_file,
                  "TOML file with any of these keys (flags and env win)")
      ->envname("REDPACKET_CONFIG")
      ->check(CLI::ExistingFile);
  auto limits = &config.limits;
  struct Definition {
    const char* key;
    const char* help;
    std::function<CLI::Option*(const std::string& flag)> add;
    std::function<void(const std::string&)> set;
  };
  const std::vector<Definition> definitions = {
      {"mode", "embedded (one process) or cluster (Redis Cluster)",
       [&](const std::string& flag) {
         return command.add_option(flag, config.mode)
             ->check(CLI::IsMember({"embedded", "cluster"}));
       },
       [&](const std::string& v) { config.mode = v; }},
      {"host", "address to listen on",
       [&](const std::string& flag) { return command.add_option(flag, config.host); },
       [&](const std::string& v) { config.host = v; }},
      {"port", "port to listen on (0: any free port)",
       [&](const std::string& flag) { return command.add_option(flag, config.port); },
       [&](const std::string& v) { config.port = ParseNumber<std::uint16_t>("port", v); }},
      {"data_dir", "directory of the ledger and journal",
       [&](const std::string& flag) { return command.add_option(flag, config.data_dir); },
       [&](const std::string& v) { config.data_dir = v; }},
      {"redis_nodes",
       "cluster mode: Redis Cluster nodes, host:port[,host:port...] (any one reachable is enough)",
       [&](const std::string& flag) { return command.add_option(flag, config.redis_nodes); },
       [&](const std::string& v) { config.redis_nodes = v; }},
      {"kafka_brokers", "cluster mode: Kafka bootstrap brokers, host:port[,host:port...]",
       [&](const std::string& flag) { return command.add_option(flag, config.kafka_brokers); },
       [&](const std::string& v) { config.kafka_brokers = v; }},
      {"kafka_linger_ms",
       "cluster mode: how long the relay's producer fills a batch before sending it (nobody waits "
       "for it)",
       [&](const std::string& flag) {
         return command.add_option(flag, config.kafka_linger_ms)
             ->check(CLI::Range(std::int64_t{0}, std::int64_t{5000}));
       },
       [&](const std::string& v) {
         config.kafka_linger_ms = ParseNumber<std::int64_t>("kafka_linger_ms", v);
       }},
      {"kafka_topic", "cluster mode: the topic of grab and refund events",
       [&](const std::string& flag) { return command.add_option(flag, config.kafka_topic); },
       [&](const std::string& v) { config.kafka_topic = v; }},
      {"kafka_group", "worker: the Kafka consumer group",
       [&](const std::string& flag) { return command.add_option(flag, config.kafka_group); },
       [&](const std::string& v) { config.kafka_group = v; }},
      {"mariadb_primary", "cluster mode: the MariaDB primary, host:port (every write)",
       [&](const std::string& flag) { return command.add_option(flag, config.mariadb_primary); },
       [&](const std::string& v) { config.mariadb_primary = v; }},
      {"mariadb_replica",
       "cluster mode: the MariaDB replica, host:port (details, history, balance; empty: the "
       "primary)",
       [&](const std::string& flag) { return command.add_option(flag, config.mariadb_replica); },
       [&](const std::string& v) { config.mariadb_replica = v; }},
      {"mariadb_user", "cluster mode: MariaDB user",
       [&](const std::string& flag) { return command.add_option(flag, config.mariadb_user); },
       [&](const std::string& v) { config.mariadb_user = v; }},
      {"mariadb_password", "cluster mode: MariaDB password",
       [&](const std::string& flag) { return command.add_option(flag, config.mariadb_password); },
       [&](const std::string& v) { config.mariadb_password = v; }},
      {"mariadb_database", "cluster mode: MariaDB database",
       [&](const std::string& flag) { return command.add_option(flag, config.mariadb_database); },
       [&](const std::string& v) { config.mariadb_database = v; }},
      {"max_replica_lag_s",
       "cluster mode: reads go to the primary while the replica lags more than this",
       [&](const std::string& flag) {
         return command.add_option(flag, config.max_replica_lag_s)
             ->check(CLI::Range(std::int64_t{0}, std::int64_t{86400}));
       },
       [&](const std::string& v) {
         config.max_replica_lag_s = ParseNumber<std::int64_t>("max_replica_lag_s", v);
       }},
      {"reconcile_interval_ms",
       "cluster mode: how often the check compares Redis with the ledger (and reports)",
       [&](const std::string& flag) {
         return command.add_option(flag, config.reconcile_interval_ms)
             ->check(CLI::Range(std::int64_t{100}, std::int64_t{86400000}));
       },
       [&](const std::string& v) {
         config.reconcile_interval_ms = ParseNumber<std::int64_t>("reconcile_interval_ms", v);
       }},
      {"outbox_claim_age_ms",
       "cluster mode: the relay's recovery publishes outbox entries older than this (the fast path "
       "has not)",
       [&](const std::string& flag) {
         return command.add_option(flag, config.outbox_claim_age_ms)
             ->check(CLI::Range(std::int64_t{100}, std::int64_t{86400000}));
       },
       [&](const std::string& v) {
         config.outbox_claim_age_ms = ParseNumber<std::int64_t>("outbox_claim_age_ms", v);
       }},
      {"worker_batch", "worker: events per ledger transaction",
       [&](const std::string& flag) {
         return command.add_option(flag, config.worker_batch)
             ->check(CLI::Range(std::int64_t{1}, std::int64_t{100000}));
       },
       [&](const std::string& v) {
         config.worker_batch = ParseNumber<std::int64_t>("worker_batch", v);
       }},
      {"journal_name",
       "journal directory data_dir/journal-<name> (each server sharing a data_dir needs its own)",
       [&](const std::string& flag) { return command.add_option(flag, config.journal_name); },
       [&](const std::string& v) { config.journal_name = v; }},
      {"dev", "development mode: X-User-Id accepted, admin endpoints open, GET /grab",
       [&](const std::string& flag) { return command.add_flag(flag, config.dev); },
       [&](const std::string& v) { config.dev = v == "true" || v == "1"; }},
      {"threads", "I/O event loops (0: one per core)",
       [&](const std::string& flag) {
         return command.add_option(flag, config.threads)->check(CLI::Range(0, 256));
       },
       [&](const std::string& v) { config.threads = ParseNumber<int>("threads", v); }},
      {"max_count", "most shares in one packet",
       [&command, limits](const std::string& flag) {
         return command.add_option(flag, limits->max_count)
             ->check(CLI::Range(std::int64_t{1}, std::int64_t{100'000'000}));
       },
       [limits](const std::string& v) {
         limits->max_count = ParseNumber<std::int64_t>("max_count", v);
       }},
      {"max_total_cents", "largest packet in cents",
       [&command, limits](const std::string& flag) {
         return command.add_option(flag, limits->max_total_cents)
             ->check(CLI::Range(std::int64_t{1}, std::int64_t{1'000'000'000'000}));
       },
       [limits](const std::string& v) {
         limits->max_total_cents = ParseNumber<std::int64_t>("max_total_cents", v);
       }},
      {"min_expires_in_s", "shortest expiry a packet may ask for",
       [&command, limits](const std::string& flag) {
         return command.add_option(flag, limits->min_expires_in_s)
             ->check(CLI::Range(std::int64_t{1}, std::int64_t{86400}));
       },
       [limits](const std::string& v) {
         limits->min_expires_in_s = ParseNumber<std::int64_t>("min_expires_in_s", v);
       }},
      {"max_expires_in_s", "longest expiry (and the default)",
       [&command, limits](const std::string& flag) {
         return command.add_option(flag, limits->max_expires_in_s)
             ->check(CLI::Range(std::int64_t{1}, std::int64_t{30 * 86400}));
       },
       [limits](const std::string& v) {
         limits->max_expires_in_s = ParseNumber<std::int64_t>("max_expires_in_s", v);
       }},
      {"token_secret",
       "HMAC secrets of bearer tokens, newest first: \"new,old\" signs with new and accepts both "
       "(rotation)",
       [&](const std::string& flag) { return command.add_option(flag, config.token_secret); },
       [&](const std::string& v) { config.token_secret = v; }},
      {"sweep_interval_ms", "how often expired packets are looked for",
       [&](const std::string& flag) {
         return command.add_option(flag, config.sweep_interval_ms)
             ->check(CLI::Range(std::int64_t{10}, std::int64_t{3'600'000}));
       },
       [&](const std::string& v) {
         config.sweep_interval_ms = ParseNumber<std::int64_t>("sweep_interval_ms", v);
       }},
      {"journal_gather_us",
       "the journal waits up to this long for a batch to fill before its fsync",
       [&](const std::string& flag) {
         return command.add_option(flag, config.journal_gather_us)
             ->check(CLI::Range(std::int64_t{0}, std::int64_t{10'000}));
       },
       [&](const std::string& v) {
         config.journal_gather_us = ParseNumber<std::int64_t>("journal_gather_us", v);
       }},
      {"journal_writer",
       "loop: the first I/O thread writes and fsyncs the journal through io_uring; thread: a "
       "writer and a completion thread",
       [&](const std::string& flag) {
         return command.add_option(flag, config.journal_writer)
             ->check(CLI::IsMember({"loop", "thread"}));
       },
       [&](const std::string& v) {
         if (v != "loop" && v != "thread")
           throw std::invalid_argument("journal_writer must be loop or thread, not " + v);
         config.journal_writer = v;
       }},
      {"idle_timeout_ms", "close a connection idle this long",
       [&](const std::string& flag) {
         return command.add_option(flag, config.idle_timeout_ms)
             ->check(CLI::Range(std::int64_t{100}, std::int64_t{3'600'000}));
       },
       [&](const std::string& v) {
         config.idle_timeout_ms = ParseNumber<std::int64_t>("idle_timeout_ms", v);
       }},
      {"rate_limit_per_user",
       "requests a second per caller (token user, X-User-Id in --dev, else client IP) before 429; "
       "0: off (the default with --dev)",
       [&](const std::string& flag) {
         return command.add_option(flag, config.rate_limit_per_user)
             ->check(CLI::Range(std::int64_t{0}, std::int64_t{1'000'000}));
       },
       [&](const std::string& v) {
         config.rate_limit_per_user = ParseNumber<std::int64_t>("rate_limit_per_user", v);
       }},
      {"rate_limit_burst", "requests a caller may make at once before the per-second rate applies",
       [&](const std::string& flag) {
         return command.add_option(flag, config.rate_limit_burst)
             ->check(CLI::Range(std::int64_t{1}, std::int64_t{1'000'000}));
       },
       [&](const std::string& v) {
         config.rate_limit_burst = ParseNumber<std::int64_t>("rate_limit_burst", v);
       }},
      {"header_timeout_ms",
       "close a connection whose request head is not complete this long after its first byte (0: "
       "no deadline)",
       [&](const std::string& flag) {
         return command.add_option(flag, config.header_timeout_ms)
             ->check(CLI::Range(std::int64_t{0}, std::int64_t{3'600'000}));
       },
       [&](const std::string& v) {
         config.header_timeout_ms = ParseNumber<std::int64_t>("header_timeout_ms", v);
       }},
      {"max_connections",
       "open connections beyond this are closed at once (also capped by the open-file limit; 0: "
       "only that)",
       [&](const std::string& flag) {
         return command.add_option(flag, config.max_connections)
             ->check(CLI::Range(std::int64_t{0}, std::int64_t{100'000'000}));
       },
       [&](const std::string& v) {
         config.max_connections = ParseNumber<std::int64_t>("max_connections", v);
       }},
      {"max_connections_per_ip",
       "open connections from one client address beyond this are closed at once (0: no cap)",
       [&](const std::string& flag) {
         return command.add_option(flag, config.max_connections_per_ip)
             ->check(CLI::Range(std::int64_t{0}, std::int64_t{100'000'000}));
       },
       [&](const std::string& v) {
         config.max_connections_per_ip = ParseNumber<std::int64_t>("max_connections_per_ip", v);
       }},
      {"event_streams_max", "open event streams (GET /v1/packets/{id}/events) at most; beyond: 503",
       [&](const std::string& flag) {
         return command.add_option(flag, config.event_streams_max)
             ->check(CLI::Range(std::int64_t{0}, std::int64_t{10'000'000}));
       },
       [&](const std::string& v) {
         config.event_streams_max = ParseNumber<std::int64_t>("event_streams_max", v);
       }},
      {"event_poll_ms",
       "how often a packet with event streams is re-read (grabs through other servers, expiry)",
       [&](const std::string& flag) {
         return command.add_option(flag, config.event_poll_ms)
             ->check(CLI::Range(std::int64_t{10}, std::int64_t{60'000}));
       },
       [&](const std::string& v) {
         config.event_poll_ms = ParseNumber<std::int64_t>("event_poll_ms", v);
       }},
      {"event_stream_buffer_bytes",
       "bytes an event stream may have waiting for a slow reader before it is dropped",
       [&](const std::string& flag) {
         return command.add_option(flag, config.event_stream_buffer_bytes)
             ->check(CLI::Range(std::int64_t{1024}, std::int64_t{64 * 1024 * 1024}));
       },
       [&](const std::string& v) {
         config.event_stream_buffer_bytes =
             ParseNumber<std::int64_t>("event_stream_buffer_bytes", v);
       }},
      {"shutdown_grace_ms", "on SIGTERM, wait this long for in-flight requests",
       [&](const std::string& flag) { return command.add_option(flag, config.shutdown_grace_ms); },
       [&](const std::string& v) {
         config.shutdown_grace_ms = ParseNumber<std::int64_t>("shutdown_grace_ms", v);
       }},
      {"log_level", "trace, debug, info, warn, error",
       [&](const std::string& flag) {
         return command.add_option(flag, config.log_level)
             ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}));
       },
       [&](const std::string& v) { config.log_level = v; }},
  };
  for (const auto& key : keys) {
    auto it = std::find_if(definitions.begin(), definitions.end(),
                           [&](const Definition& d) { return key == d.key; });
    if (it == definitions.end()) throw std::logic_error("unknown config key " + key);
    CLI::Option* option = it->add(FlagName(key));
    option->description(it->help)->envname(EnvName(key))->capture_default_str();
    bindings_.push_back({key, option, it->set});
  }
}

void ConfigBinder::ApplyConfigFile() {
  if (config_.config_file.empty()) return;
  toml::table table;
  try {
    table = toml::parse_file(config_.config_file);
  } catch (const toml::parse_error& error) {
    throw std::runtime_error(
        fmt::format("cannot parse {}: {}", config_.config_file, error.description()));
  }
  for (const auto& [key, node] : table) {
    const std::string name(key.str());
    auto it = std::find_if(bindings_.begin(), bindings_.end(),
                           [&](const Binding& b) { return b.key == name; });
    if (it == bindings_.end()) {
      throw std::runtime_error(
          fmt::format("{}: unknown key '{}' for this command", config_.config_file, name));
    }
    if (it->option->count() > 0) continue;  // a flag or env variable set it: they win
    std::string text;
    if (auto value = node.value<std::string>(); value && node.is_string())
      text = *value;
    else if (auto number = node.value<std::int64_t>())
      text = std::to_string(*number);
    else if (auto flag = node.value<bool>())
      text = *flag ? "true" : "false";
    else
      throw std::runtime_error(fmt::format("{}: key '{}' must be a string, integer or boolean",
                                           config_.config_file, name));
    it->set_from_text(text);
    it->set_from_file = true;
  }
}

bool ConfigBinder::IsSet(const std::string& key) const {
  auto it = std::find_if(bindings_.begin(), bindings_.end(),
                         [&](const Binding& b) { return b.key == key; });
  return it != bindings_.end() && (it->option->count() > 0 || it->set_from_file);
}

http::ApiOptions ApiOptionsFrom(const Config& config, const domain::TimeSource& clock) {
  http::ApiOptions options;
  options.dev = config.dev;
  options.token_secrets = EffectiveTokenSecrets(config);
  options.rate_limit_per_s = config.rate_limit_per_user;
  options.rate_limit_burst = config.rate_limit_burst;
  options.clock = &clock;
  return options;
}

std::vector<std::string> EffectiveTokenSecrets(const Config& config) {
  if (!config.token_secret.empty()) {
    try {
      return http::ParseTokenSecrets(config.token_secret);
    } catch (const std::invalid_argument& error) {
      throw std::runtime_error(error.what());
    }
  }
  if (config.dev) return {kDevTokenSecret};
  throw std::runtime_error(
      "a token secret is required: set --token-secret, REDPACKET_TOKEN_SECRET or token_secret in "
      "the "
      "config file (or run with --dev)");
}

}  // namespace redpacket::app
