// Lease on the Redis Cluster: key {<prefix>:lease}:<name> holds "<token>:<holder>" with a PX
// expiry, {<prefix>:lease}:<name>:token the last token handed out (same slot). One Lua script
// acquires or renews, one releases; both wait for a replica (WAIT) before answering. Blocking;
// thread-safe (calls are serialized onto a private I/O thread). Never call from an I/O thread.
#pragma once

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <memory>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "lease/lease.h"
#include "net/redis/cluster_client.h"
#include "net/redis/endpoint.h"
#include "net/redis/script.h"

namespace redpacket::lease {

struct RedisLeaseOptions {
  // Timeouts, reconnect backoff... of the client; `seeds` is set from the constructor's.
  net::redis::ClusterClientOptions client;
  std::string key_prefix = "rp";
  // An acquisition answers only once this many replicas have it: the token counter must not go
  // back on failover, or a new holder would get a token already handed out.
  int min_replicas = 1;
  std::chrono::milliseconds replication_timeout{100};
  std::chrono::milliseconds call_timeout{2000};  // the whole Redis part of one call
};

class RedisLease final : public Lease {
 public:
  // Starts the private I/O thread; no I/O until the first call. Throws std::invalid_argument
  // without seeds or with an empty name.
  RedisLease(std::vector<net::redis::Endpoint> seeds, std::string name,
             RedisLeaseOptions options = {});
  // Stops the client and joins the thread.
  ~RedisLease() override;
  RedisLease(const RedisLease&) = delete;
  RedisLease& operator=(const RedisLease&) = delete;

  Result<std::optional<std::uint64_t>> TryAcquire(std::string_view holder,
                                                  std::chrono::milliseconds ttl) override;
  Status Release(std::string_view holder) override;

  const std::string& key() const { return key_; }
  const std::string& token_key() const { return token_key_; }

 private:
  // Runs `script` on the lease's slot and waits for it (and for its WAIT).
  net::redis::Result Call(const net::redis::Script& script, std::span<const std::string_view> args);

  const RedisLeaseOptions options_;
  const std::string key_;
  const std::string token_key_;
  const net::redis::Script acquire_;
  const net::redis::Script release_;
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
  std::unique_ptr<net::redis::ClusterClient> client_;  // used on thread_ only
  std::thread thread_;
};

}  // namespace redpacket::lease
