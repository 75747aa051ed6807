// What the cluster-mode tests share: the addresses of the services the ctest fixtures started
// (from the fixtures' environment), the flags of `serve --mode cluster` and `worker`, the
// service scripts (to stop and restart a service mid-test), and the cluster audit.
// Not thread-safe: call from the test's thread.
#pragma once

#include <atomic>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "../e2e/harness.h"

namespace redpacket::e2e {

std::string RedisNodes();
std::string KafkaBrokers();
// The events topic of these tests (and its .dlq), created on the fixture's broker at first use.
// The kafka tests publish grabs of packets no ledger holds to the default topic of the same
// broker; a worker that read them would set them aside, and the audit would rightly fail.
const std::string& ClusterTopic();
std::string MariaDbPrimary();
std::string MariaDbReplica();

// Flags of `serve --mode cluster` against the fixtures' services, with quick sweeps and
// reconciliation so tests take seconds; `extra` (flag, value pairs) adds or replaces flags.
std::vector<std::string> ClusterServeFlags(std::vector<std::string> extra = {});
// Flags of `worker` against the fixtures' services.
std::vector<std::string> WorkerFlags(std::vector<std::string> extra = {});

// Runs `<script> <arguments> --run-dir <fixture's> --port <fixture's>` for "kafka" or
// "mariadb" (scripts/kafka, scripts/mariadb) and throws when it fails.
void RunServiceScript(const std::string& service, std::vector<std::string> arguments);

// A base for the user ids of one test run: the ledger outlives a test binary (a rerun on the same
// services), and the tests expect fresh users. Ids base .. base + 99,999 are this run's.
std::int64_t RunUserBase();

// The output of a shell command (throws when it fails).
std::string Shell(const std::string& command);

// The Redis master that owns packet `packet_id`'s keys ({rp:<id>}), "127.0.0.1:port", and its pid.
struct RedisNode {
  std::string address;
  int port = 0;
  pid_t pid = 0;
};
RedisNode MasterOfPacket(const std::string& packet_id);
// `scripts/redis-cluster up` for the fixture's cluster: restarts a killed node, waits until the
// cluster is whole again.
void RestoreRedisCluster();

// Clients grabbing one packet through `server`, each request as a new user (ids from
// `first_user`), until the packet is gone (410), Stop(), or 90 s — through an outage the test
// causes: a 503 is counted and the client goes on; anything but 200, 410 and 503 is unexpected and
// ends that client. Joins on destruction.
class OutageCrowd {
 public:
  OutageCrowd(const ServerProcess& server, const std::string& packet_id, std::int64_t first_user,
              int clients = 8);
  ~OutageCrowd();
  // The outage starts now: FirstOkAfterOutage() then tells how soon a grab issued after it was
  // answered 200.
  void MarkOutage();
  int acknowledged() const { return acknowledged_.load(); }
  std::optional<milliseconds> FirstOkAfterOutage() const;
  void Stop() { stop_ = true; }
  void Join();

  // Valid after Join().
  std::map<std::int64_t, GrabRecord> winners;
  std::vector<std::string> unexpected;
  int unavailable = 0;

 private:
  void Run(const ServerProcess& server);

  std::string path_;
  std::atomic<std::int64_t> next_user_;
  std::atomic<int> acknowledged_{0};
  std::atomic<bool> stop_{false};
  mutable std::mutex mutex_;
  std::optional<std::chrono::steady_clock::time_point> outage_at_, first_ok_after_outage_;
  std::vector<std::thread> threads_;
};

// `redpacket audit --mode cluster` against the fixtures' services.
CommandResult ClusterAudit();

// Waits (up to `timeout`) until the user's balance is `expected`; false on timeout, with the
// last balance in `last`.
bool WaitForBalance(ApiClient& api, std::int64_t user, std::int64_t expected, milliseconds timeout,
                    std::int64_t* last);

// A metric's value from GET /metrics of `process` (the first sample named `name`), or -1.
double MetricOf(const ServerProcess& process, const std::string& name);

}  // namespace redpacket::e2e
