// Cluster mode's options read from the Config (flags, env, TOML): the Redis, Kafka and MariaDB
// addresses, each defaulting to what the project's scripts start. Pure; throws
// std::runtime_error naming the key when a value is malformed (a startup error).
#pragma once

#include "app/cluster_backend.h"
#include "app/config.h"
#include "bus/kafka/kafka_source.h"

namespace redpacket::app {

ledger::MariaDbOptions MariaDbPrimaryFrom(const Config& config);
// nullopt when mariadb_replica is empty (every read on the primary).
std::optional<ledger::MariaDbOptions> MariaDbReplicaFrom(const Config& config);
bus::KafkaSinkOptions KafkaSinkFrom(const Config& config);
bus::KafkaSourceOptions KafkaSourceFrom(const Config& config);
ClusterOptions ClusterOptionsFrom(const Config& config);

}  // namespace redpacket::app
