// The cluster tests' shared helpers.
#include "cluster_harness.h"

#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "domain/clock.h"

namespace redpacket::e2e {
namespace {

std::string Env(const char* name, const std::string& fallback) {
  const char* value = std::getenv(name);  // NOLINT(concurrency-mt-unsafe): no setenv in tests
  return value != nullptr && *value != '\0' ? value : fallback;
}

std::string Quote(const std::string& text) {
  std::string quoted = "'";
  for (char c : text) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return quoted + "'";
}

}  // namespace

std::string RedisNodes() { return "127.0.0.1:" + Env("REDPACKET_REDIS_BASE_PORT", "7001"); }
std::string KafkaBrokers() { return "127.0.0.1:" + Env("REDPACKET_KAFKA_PORT", "9092"); }
std::string MariaDbPrimary() { return "127.0.0.1:" + Env("REDPACKET_MARIADB_PORT", "3307"); }
std::string MariaDbReplica() {
  return "127.0.0.1:" + std::to_string(std::stoi(Env("REDPACKET_MARIADB_PORT", "3307")) + 1);
}

// `defaults` (flag, value pairs) with the pairs of `overrides` replacing those of the same flag.
std::vector<std::string> Merge(std::vector<std::string> defaults,
                               const std::vector<std::string>& overrides) {
  for (std::size_t i = 0; i + 1 < overrides.size(); i += 2) {
    bool replaced = false;
    for (std::size_t j = 0; j + 1 < defaults.size(); j += 2) {
      if (defaults[j] == overrides[i]) {
        defaults[j + 1] = overrides[i + 1];
        replaced = true;
      }
    }
    if (!replaced) {
      defaults.push_back(overrides[i]);
      defaults.push_back(overrides[i + 1]);
    }
  }
  return defaults;
}

std::vector<std::string> ClusterServeFlags(std::vector<std::string> extra) {
  return Merge(
      {"--mode", "cluster", "--redis-nodes", RedisNodes(), "--kafka-brokers", KafkaBrokers(),
       "--kafka-topic", ClusterTopic(), "--mariadb-primary", MariaDbPrimary(), "--mariadb-replica",
       MariaDbReplica(), "--max-count", "1000", "--max-total-cents", "10000000", "--threads", "2",
       // Quick expiry, sweeps and reconciliation: tests take seconds.
       "--min-expires-in-s", "1", "--sweep-interval-ms", "100", "--reconcile-interval-ms", "500",
       "--outbox-claim-age-ms", "1000"},
      extra);
}

std::vector<std::string> WorkerFlags(std::vector<std::string> extra) {
  return Merge({"--kafka-brokers", KafkaBrokers(), "--kafka-topic", ClusterTopic(),
                "--mariadb-primary", MariaDbPrimary()},
               extra);
}

const std::string& ClusterTopic() {
  static const std::string topic = [] {
    std::string name = "red_packet_clustertest";
    RunServiceScript("kafka", {"up", "--topic", name});
    return name;
  }();
  return topic;
}

void RunServiceScript(const std::string& service, std::vector<std::string> arguments) {
  const std::string upper = service == "kafka" ? "KAFKA" : "MARIADB";
  const std::string script = Env(("REDPACKET_" + upper + "_SCRIPT").c_str(), "");
  if (script.empty()) throw std::runtime_error("REDPACKET_" + upper + "_SCRIPT is not set");
  std::string command = Quote(script);
  for (const auto& argument : arguments) command += " " + Quote(argument);
  command += " --run-dir " + Quote(Env(("REDPACKET_" + upper + "_RUN_DIR").c_str(), ""));
  command += " --port " + Env(("REDPACKET_" + upper + "_PORT").c_str(), "");
  command += " 2>&1";
  const int status = std::system(command.c_str());  // NOLINT(concurrency-mt-unsafe)
  if (status != 0) {
    throw std::runtime_error(command + " failed with status " + std::to_string(status));
  }
}

std::int64_t RunUserBase() {
  static const std::int64_t base =
      (domain::ToUnixSeconds(domain::SystemTime().Now()) % 10'000'000) * 100'000;
  return base;
}

std::string Shell(const std::string& command) {
  std::string output;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) throw std::runtime_error("cannot run " + command);
  char chunk[4096];
  while (std::size_t n = std::fread(chunk, 1, sizeof chunk, pipe)) output.append(chunk, n);
  if (::pclose(pipe) != 0) throw std::runtime_error(command + " failed:\n" + output);
  return output;
}

RedisNode MasterOfPacket(const std::string& packet_id) {
  const std::string cli = "redis-cli -h 127.0.0.1 -p " + Env("REDPACKET_REDIS_BASE_PORT", "7001");
  const int slot = std::stoi(Shell(cli + " CLUSTER KEYSLOT '{rp:" + packet_id + "}:meta'"));
  // CLUSTER NODES: "<id> <host:port@bus> <flags> <master> <ping> <pong> <epoch> <state> <slots...>"
  std::istringstream lines(Shell(cli + " CLUSTER NODES"));
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream fields(line);
    std::string id, address, flags, master, ping, pong, epoch, state, range;
    fields >> id >> address >> flags >> master >> ping >> pong >> epoch >> state;
    if (flags.find("master") == std::string::npos || flags.find("fail") != std::string::npos)
      continue;
    while (fields >> range) {
      const auto dash = range.find('-');
      const int low = std::stoi(range.substr(0, dash));
      const int high = dash == std::string::npos ? low : std::stoi(range.substr(dash + 1));
      if (slot < low || slot > high) continue;
      RedisNode node;
      node.address = address.substr(0, address.find('@'));
      node.port = std::stoi(node.address.substr(node.address.rfind(':') + 1));
      const std::string info =
          Shell("redis-cli -h 127.0.0.1 -p " + std::to_string(node.port) + " INFO server");
      node.pid = static_cast<pid_t>(std::stol(info.substr(info.find("process_id:") + 11)));
      return node;
    }
  }
  throw std::runtime_error("no master serves slot " + std::to_string(slot));
}

void RestoreRedisCluster() {
  Shell("REDPACKET_REDIS_BASE_PORT=" + Env("REDPACKET_REDIS_BASE_PORT", "7001") + " " +
        Quote(Env("REDPACKET_REDIS_CLUSTER_SCRIPT", "")) + " up --run-dir " +
        Quote(Env("REDPACKET_REDIS_RUN_DIR", "")) + " 2>&1");
}

OutageCrowd::OutageCrowd(const ServerProcess& server, const std::string& packet_id,
                         std::int64_t first_user, int clients)
    : path_("/v1/packets/" + packet_id + "/grab"), next_user_(first_user) {
  for (int i = 0; i < clients; ++i) threads_.emplace_back([this, &server] { Run(server); });
}

OutageCrowd::~OutageCrowd() {
  Stop();
  Join();
}

void OutageCrowd::Join() {
  for (auto& thread : threads_) {
    if (thread.joinable()) thread.join();
  }
}

void OutageCrowd::MarkOutage() {
  std::lock_guard lock(mutex_);
  outage_at_ = std::chrono::steady_clock::now();
}

std::optional<milliseconds> OutageCrowd::FirstOkAfterOutage() const {
  std::lock_guard lock(mutex_);
  if (!outage_at_ || !first_ok_after_outage_) return std::nullopt;
  return std::chrono::duration_cast<milliseconds>(*first_ok_after_outage_ - *outage_at_);
}

void OutageCrowd::Run(const ServerProcess& server) {
  ApiClient client(server);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(90);
  while (!stop_.load() && std::chrono::steady_clock::now() < deadline) {
    const std::int64_t user = next_user_.fetch_add(1);
    const auto issued = std::chrono::steady_clock::now();
    const Reply reply = client.Post(path_, "", user);
    std::lock_guard lock(mutex_);
    if (reply.status == 200) {
      winners[user] = GrabRecord{user, reply.Int("amount_cents"), reply.Int("seq")};
      ++acknowledged_;
      if (outage_at_ && issued > *outage_at_ && !first_ok_after_outage_) {
        first_ok_after_outage_ = std::chrono::steady_clock::now();
      }
    } else if (reply.status == 503) {
      ++unavailable;
    } else if (reply.status == 410) {
      return;
    } else {
      unexpected.push_back(Describe(reply));
      return;
    }
  }
}

CommandResult ClusterAudit() {
  return RunRedpacket({"audit", "--mode", "cluster", "--redis-nodes", RedisNodes(),
                       "--mariadb-primary", MariaDbPrimary()});
}

bool WaitForBalance(ApiClient& api, std::int64_t user, std::int64_t expected, milliseconds timeout,
                    std::int64_t* last) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    // A 503 (a database restarting) is a reason to ask again, not to fail.
    const Reply reply = api.Get("/v1/users/" + std::to_string(user) + "/balance", user);
    if (reply.status == 200) {
      *last = reply.Int("balance_cents") + reply.Int("pending_cents");
      if (*last == expected) return true;
    }
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(milliseconds(50));
  }
}

double MetricOf(const ServerProcess& process, const std::string& name) {
  auto client = process.NewClient();
  const auto response = client->Get("/metrics");
  std::istringstream lines(response.body);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind(name, 0) == 0 && line.size() > name.size() &&
        (line[name.size()] == ' ' || line[name.size()] == '{')) {
      return std::stod(line.substr(line.rfind(' ') + 1));
    }
  }
  return -1;
}

}  // namespace redpacket::e2e
