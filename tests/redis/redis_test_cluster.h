// Where the `redis` tests find the cluster that scripts/redis-cluster starts for them (ctest's
// `redis_cluster` fixture): its node list and how to bring a killed node back. Header-only,
// blocking test code.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "net/redis/endpoint.h"

namespace redpacket::redis_test {

// 3 masters, one replica each and one spare replica (scripts/redis-cluster, decisions.md §12).
inline constexpr int kRedisClusterNodeCount = 7;

inline std::string RedisTestEnv(const char* name, const std::string& fallback) {
  const char* value = std::getenv(name);  // NOLINT(concurrency-mt-unsafe): read before threads
  return value != nullptr && *value != '\0' ? value : fallback;
}

// REDPACKET_REDIS_NODES, else the seven ports from REDPACKET_REDIS_BASE_PORT (default 7001).
inline std::vector<net::redis::Endpoint> RedisClusterNodes() {
  if (auto nodes = net::redis::ParseEndpointList(RedisTestEnv("REDPACKET_REDIS_NODES", ""))) {
    return *nodes;
  }
  const int base = std::stoi(RedisTestEnv("REDPACKET_REDIS_BASE_PORT", "7001"));
  std::vector<net::redis::Endpoint> nodes;
  nodes.reserve(kRedisClusterNodeCount);
  for (int i = 0; i < kRedisClusterNodeCount; ++i) {
    nodes.push_back({"127.0.0.1", static_cast<std::uint16_t>(base + i)});
  }
  return nodes;
}

}  // namespace redpacket::redis_test
