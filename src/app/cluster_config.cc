// Config -> cluster options.
#include "app/cluster_config.h"

#include <fmt/format.h>
#include <unistd.h>

#include <stdexcept>

namespace redpacket::app {
namespace {

ledger::MariaDbOptions MariaDbAt(const Config& config, const std::string& key,
                                 const std::string& address) {
  auto endpoint = net::redis::ParseEndpoint(address);
  if (!endpoint) {
    throw std::runtime_error(fmt::format("invalid {} '{}': expected host:port", key, address));
  }
  ledger::MariaDbOptions options;
  options.host = endpoint->host;
  options.port = endpoint->port;
  options.user = config.mariadb_user;
  options.password = config.mariadb_password;
  options.database = config.mariadb_database;
  options.stream = config.kafka_topic;
  return options;
}

}  // namespace

ledger::MariaDbOptions MariaDbPrimaryFrom(const Config& config) {
  return MariaDbAt(config, "mariadb_primary", config.mariadb_primary);
}

std::optional<ledger::MariaDbOptions> MariaDbReplicaFrom(const Config& config) {
  if (config.mariadb_replica.empty()) return std::nullopt;
  return MariaDbAt(config, "mariadb_replica", config.mariadb_replica);
}

bus::KafkaSinkOptions KafkaSinkFrom(const Config& config) {
  bus::KafkaSinkOptions options;
  options.brokers = config.kafka_brokers;
  options.topic = config.kafka_topic;
  options.linger = std::chrono::milliseconds(config.kafka_linger_ms);
  return options;
}

bus::KafkaSourceOptions KafkaSourceFrom(const Config& config) {
  bus::KafkaSourceOptions options;
  options.brokers = config.kafka_brokers;
  options.topic = config.kafka_topic;
  options.dead_letter_topic = config.kafka_topic + ".dlq";
  options.group_id = config.kafka_group;
  return options;
}

ClusterOptions ClusterOptionsFrom(const Config& config) {
  ClusterOptions options;
  auto seeds = net::redis::ParseEndpointList(config.redis_nodes);
  if (!seeds) {
    throw std::runtime_error(fmt::format(
        "invalid redis_nodes '{}': expected host:port[,host:port...]", config.redis_nodes));
  }
  options.redis_seeds = std::move(*seeds);
  options.redis_nodes = config.redis_nodes;
  options.kafka = KafkaSinkFrom(config);
  options.primary = MariaDbPrimaryFrom(config);
  options.replica = MariaDbReplicaFrom(config);
  options.read_routing.max_lag = std::chrono::seconds(config.max_replica_lag_s);
  options.reconcile_interval = std::chrono::milliseconds(config.reconcile_interval_ms);
  options.relay.claim_min_age = std::chrono::milliseconds(config.outbox_claim_age_ms);
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  options.server_name = fmt::format("{}:{}:{}", host, config.port, ::getpid());
  return options;
}

}  // namespace redpacket::app
