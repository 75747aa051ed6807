// The whole topology end to end (label `cluster`), as a newcomer starts it: `scripts/cluster up`
// on ports and a run dir of its own (no ctest fixture), then every request through nginx with
// bearer tokens: a 600-user stampede with its invariants, the per-user and per-IP rate limits,
// kill -9 of one API server mid-stampede, a clean `audit --mode cluster`, `scripts/cluster down`
// and no listener left. The cluster is stopped even when the test fails.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <latch>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "cluster_harness.h"
#include "domain/clock.h"
#include "http/access/token.h"
#include "http/client/client.h"

namespace redpacket::e2e {
namespace {

using Clock = std::chrono::steady_clock;

std::string Env(const char* name, const std::string& fallback) {
  const char* value = std::getenv(name);  // NOLINT(concurrency-mt-unsafe): no setenv in tests
  return value != nullptr && *value != '\0' ? value : fallback;
}

// The ports and run dir the ctest registration gives (tests/cluster/CMakeLists.txt); the
// defaults are the same, for a run by hand.
const std::string kScript = Env("REDPACKET_CLUSTER_SCRIPT", "scripts/cluster");
const std::string kRunDir = Env("REDPACKET_TOPOLOGY_RUN_DIR", "run/topology-test");
const int kRedisBasePort = std::stoi(Env("REDPACKET_REDIS_BASE_PORT", "7401"));
const int kMariaDbPort = std::stoi(Env("REDPACKET_MARIADB_PORT", "3607"));
const int kKafkaPort = std::stoi(Env("REDPACKET_KAFKA_PORT", "9392"));
const int kNginxPort = std::stoi(Env("REDPACKET_NGINX_PORT", "18480"));
const int kWorkerPort = std::stoi(Env("REDPACKET_WORKER_PORT", "18490"));
constexpr int kApiPorts[] = {18481, 18482};  // REDPACKET_API_PORTS as registered

struct ScriptResult {
  int exit_code = -1;
  std::string output;
};

// Runs `scripts/cluster <arguments> --run-dir <ours>` (the ports come from the environment).
ScriptResult RunCluster(const std::string& arguments) {
  const std::string command = kScript + " " + arguments + " --run-dir '" + kRunDir + "' 2>&1";
  ScriptResult result;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return result;
  char buffer[4096];
  std::size_t read = 0;
  while ((read = std::fread(buffer, 1, sizeof buffer, pipe)) > 0)
    result.output.append(buffer, read);
  const int status = ::pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128;
  return result;
}

// Stops the cluster when the test ends, passed or failed; the run dir (logs) is purged only
// after a pass.
class ClusterGuard {
 public:
  ~ClusterGuard() {
    const bool failed = ::testing::Test::HasFailure();
    const ScriptResult down = RunCluster(failed ? "down" : "down --purge");
    if (failed || down.exit_code != 0) {
      std::cerr << "scripts/cluster down: " << down.output << "logs kept in " << kRunDir
                << "/logs\n";
    }
  }
};

std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream file(path);
  std::stringstream text;
  text << file.rdbuf();
  return text.str();
}

std::string Trim(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

// Every request goes through nginx, one keep-alive connection per thread.
class NginxClient {
 public:
  NginxClient() : client_("127.0.0.1", static_cast<std::uint16_t>(kNginxPort)) {}
  http::ClientResponse Call(std::string_view method, std::string_view target,
                            const std::string& token, std::string_view body = {},
                            Headers headers = {}) {
    if (!token.empty()) headers["Authorization"] = "Bearer " + token;
    return client_.Request(method, target, body, headers);
  }

 private:
  http::Client client_;
};

json::value Json(const http::ClientResponse& response) {
  boost::system::error_code error;
  json::value value = json::parse(response.body, error);
  return error ? json::value() : value;
}

std::string Show(const http::ClientResponse& response) {
  return std::to_string(response.status) + " " + response.body;
}

class Tokens {
 public:
  explicit Tokens(std::string secret) : secret_(std::move(secret)) {}
  // The same token `scripts/cluster token --user N` prints, signed here for many users at once.
  std::string For(std::int64_t user) const {
    http::TokenClaims claims;
    claims.user_id = user;
    claims.expires_unix_s = domain::ToUnixSeconds(domain::SystemTime().Now()) + 3600;
    return http::SignToken(claims, secret_);
  }

 private:
  std::string secret_;
};

// One grab as its client saw it.
struct Grab {
  std::int64_t user = 0;
  std::int64_t amount_cents = 0;
  std::int64_t seq = 0;
};

// Every acknowledged grab is credited: each (fresh) user's balance through nginx is its amount.
void ExpectCredited(const Tokens& tokens, const std::vector<Grab>& grabs) {
  std::map<std::int64_t, std::int64_t> missing;
  for (const Grab& grab : grabs) missing[grab.user] = grab.amount_cents;
  NginxClient client;
  const auto deadline = Clock::now() + std::chrono::seconds(40);
  std::string last;
  while (!missing.empty() && Clock::now() < deadline) {
    for (auto it = missing.begin(); it != missing.end();) {
      const auto reply = client.Call("GET", "/v1/users/" + std::to_string(it->first) + "/balance",
                                     tokens.For(it->first));
      const json::value body = Json(reply);
      if (reply.status == 200 && body.as_object().at("balance_cents").as_int64() == it->second) {
        it = missing.erase(it);
      } else {
        last = Show(reply);
        ++it;
      }
    }
    if (!missing.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  EXPECT_TRUE(missing.empty()) << missing.size() << " of " << grabs.size()
                               << " acknowledged grabs not credited within 40 s; last: " << last;
}

// The packet's details (through nginx) list every acknowledged grab with its amount and seq, and
// no user twice; returns the sum of the listed grabs.
std::int64_t ExpectListed(NginxClient& client, const std::string& token, const std::string& packet,
                          const std::vector<Grab>& acknowledged, json::object* details) {
  const auto reply = client.Call("GET", "/v1/packets/" + packet, token);
  EXPECT_EQ(reply.status, 200) << Show(reply);
  *details = Json(reply).as_object();
  std::map<std::int64_t, Grab> listed;
  std::set<std::int64_t> seqs;
  std::int64_t sum = 0;
  for (const auto& item : details->at("grabs").as_array()) {
    const auto& grab = item.as_object();
    const Grab record{grab.at("user_id").as_int64(), grab.at("amount_cents").as_int64(),
                      grab.at("seq").as_int64()};
    EXPECT_TRUE(listed.emplace(record.user, record).second) << "user " << record.user << " twice";
    EXPECT_TRUE(seqs.insert(record.seq).second) << "seq " << record.seq << " twice";
    sum += record.amount_cents;
  }
  for (const Grab& grab : acknowledged) {
    const auto it = listed.find(grab.user);
    EXPECT_TRUE(it != listed.end()) << "acknowledged grab of user " << grab.user << " not listed";
    if (it != listed.end()) {
      EXPECT_EQ(it->second.amount_cents, grab.amount_cents);
      EXPECT_EQ(it->second.seq, grab.seq);
    }
  }
  return sum;
}

std::vector<int> AllPorts() {
  std::vector<int> ports;
  for (int i = 0; i < 7; ++i) ports.push_back(kRedisBasePort + i);
  for (int port : {kMariaDbPort, kMariaDbPort + 1, kKafkaPort, kKafkaPort + 1, kNginxPort,
                   kWorkerPort, kApiPorts[0], kApiPorts[1]}) {
    ports.push_back(port);
  }
  return ports;
}

bool Listened(int port) {
  const ScriptResult ss{0, Shell("ss -Htln 'sport = :" + std::to_string(port) + "'")};
  return !Trim(ss.output).empty();
}

TEST(Topology, ScriptsClusterUpServesThroughNginxWithTokensLimitsAndFailover) {
  const auto started = Clock::now();
  // A cluster left by an earlier, failed run of this test.
  RunCluster("down --purge");
  ClusterGuard guard;

  // --- up, and up again: idempotent.
  const ScriptResult up = RunCluster("up");
  ASSERT_EQ(up.exit_code, 0) << up.output;
  std::cerr << "scripts/cluster up took "
            << std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - started).count()
            << " s\n";
  const ScriptResult again = RunCluster("up");
  ASSERT_EQ(again.exit_code, 0) << again.output;
  EXPECT_NE(again.output.find("cluster: already up"), std::string::npos) << again.output;
  const ScriptResult status = RunCluster("status");
  EXPECT_EQ(status.exit_code, 0) << status.output;

  const std::filesystem::path secret_file = std::filesystem::path(kRunDir) / "token_secret";
  struct stat secret_stat {};
  ASSERT_EQ(::stat(secret_file.c_str(), &secret_stat), 0);
  EXPECT_EQ(secret_stat.st_mode & 0777, 0600u);
  const Tokens tokens(Trim(ReadFile(secret_file)));

  // --- auth: tokens from `scripts/cluster token`; no --dev.
  const ScriptResult admin_token = RunCluster("token --user 1 --admin");
  ASSERT_EQ(admin_token.exit_code, 0) << admin_token.output;
  const std::string admin = Trim(admin_token.output);
  NginxClient client;
  const auto anonymous =
      client.Call("POST", "/v1/users", "", R"({"name":"nobody"})", {{"X-User-Id", "1"}});
  EXPECT_EQ(anonymous.status, 401) << Show(anonymous);
  const auto created = client.Call("POST", "/v1/users", admin, R"({"name":"sender"})",
                                   {{"X-Request-Id", "topology-create-sender"}});
  ASSERT_EQ(created.status, 201) << Show(created);
  EXPECT_EQ(created.headers.count("x-request-id") ? created.headers.at("x-request-id") : "",
            "topology-create-sender");
  const std::int64_t sender = Json(created).as_object().at("user_id").as_int64();
  const ScriptResult sender_token = RunCluster("token --user " + std::to_string(sender));
  ASSERT_EQ(sender_token.exit_code, 0) << sender_token.output;
  const std::string sender_bearer = Trim(sender_token.output);
  const auto not_admin = client.Call("POST", "/v1/users", sender_bearer, R"({"name":"x"})");
  EXPECT_EQ(not_admin.status, 403) << Show(not_admin);
  const auto deposit =
      client.Call("POST", "/v1/users/" + std::to_string(sender) + "/deposit", admin,
                  R"({"amount_cents":1000000,"request_id":"topology-d-1"})");
  ASSERT_EQ(deposit.status, 200) << Show(deposit);
  const auto create_packet = [&](std::int64_t total, int count) {
    const auto reply = client.Call("POST", "/v1/packets", sender_bearer,
                                   R"({"total_cents":)" + std::to_string(total) + R"(,"count":)" +
                                       std::to_string(count) + R"(,"kind":"lucky"})");
    EXPECT_EQ(reply.status, 201) << Show(reply);
    return reply.status == 201 ? std::string(Json(reply).as_object().at("packet_id").as_string())
                               : std::string();
  };

  // --- a stampede of 600 users from one address on a 100-share packet: no 429 (the per-IP
  // limit is generous), every share once, the sum exact, every grab credited.
  const std::string hot = create_packet(10000, 100);
  ASSERT_FALSE(hot.empty());
  constexpr int kCrowd = 600;
  const std::int64_t crowd = RunUserBase() + 1'000;
  std::vector<http::ClientResponse> replies(kCrowd);
  {
    std::latch connected(kCrowd);
    std::vector<std::thread> threads;
    for (int i = 0; i < kCrowd; ++i) {
      threads.emplace_back([&, i] {
        NginxClient mine;
        mine.Call("GET", "/healthz", "");
        connected.arrive_and_wait();
        replies[i] = mine.Call("POST", "/v1/packets/" + hot + "/grab", tokens.For(crowd + i));
      });
    }
    for (auto& thread : threads) thread.join();
  }
  std::vector<Grab> winners;
  std::set<std::int64_t> seqs;
  std::int64_t sum = 0;
  int gone = 0;
  int limited = 0;
  for (int i = 0; i < kCrowd; ++i) {
    const auto& reply = replies[i];
    if (reply.status == 429) ++limited;
    if (reply.status == 410) {
      ++gone;
      continue;
    }
    ASSERT_EQ(reply.status, 200) << "user " << crowd + i << ": " << Show(reply);
    const auto body = Json(reply).as_object();
    EXPECT_EQ(body.at("user_id").as_int64(), crowd + i);
    const Grab grab{crowd + i, body.at("amount_cents").as_int64(), body.at("seq").as_int64()};
    EXPECT_GE(grab.amount_cents, 1);
    EXPECT_TRUE(seqs.insert(grab.seq).second) << "share " << grab.seq << " given twice";
    winners.push_back(grab);
    sum += grab.amount_cents;
  }
  EXPECT_EQ(limited, 0);
  EXPECT_EQ(winners.size(), 100u);
  EXPECT_EQ(gone, kCrowd - 100);
  EXPECT_EQ(sum, 10000);
  json::object details;
  EXPECT_EQ(ExpectListed(client, sender_bearer, hot, winners, &details), 10000);
  EXPECT_EQ(details.at("status").as_string(), "exhausted");
  ExpectCredited(tokens, winners);

  // --- one user's burst of 300 requests meets 429s with the JSON body and Retry-After.
  {
    const std::int64_t user = RunUserBase() + 5'000;
    const std::string token = tokens.For(user);
    std::atomic<int> ok{0};
    std::atomic<int> rate_limited{0};
    std::atomic<int> other{0};
    std::mutex mutex;
    http::ClientResponse sample;
    std::vector<std::thread> threads;
    for (int t = 0; t < 6; ++t) {
      threads.emplace_back([&] {
        NginxClient mine;
        for (int i = 0; i < 50; ++i) {
          auto reply = mine.Call("GET", "/v1/users/" + std::to_string(user) + "/balance", token);
          if (reply.status == 200) {
            ++ok;
          } else if (reply.status == 429) {
            ++rate_limited;
            const std::lock_guard lock(mutex);
            sample = std::move(reply);
          } else {
            ++other;
          }
        }
      });
    }
    for (auto& thread : threads) thread.join();
    EXPECT_EQ(other.load(), 0);
    EXPECT_GE(ok.load(), 40);             // the burst
    EXPECT_GE(rate_limited.load(), 100);  // 300 requests in well under 10 s at 20/s
    ASSERT_EQ(sample.status, 429);
    const json::value body = Json(sample);
    ASSERT_TRUE(body.is_object()) << sample.body;
    EXPECT_EQ(body.as_object().at("error").as_string(), "rate_limited");
    EXPECT_TRUE(body.as_object().contains("message"));
    EXPECT_EQ(sample.headers.count("retry-after"), 1u);
    std::cerr << "one user's burst of 300: " << ok.load() << " answered, " << rate_limited.load()
              << " rate limited\n";
  }

  // --- kill -9 of one API server mid-stampede: nginx routes around it and no acknowledged grab
  // is lost.
  {
    const std::string packet = create_packet(100000, 1000);
    ASSERT_FALSE(packet.empty());
    std::atomic<std::int64_t> next_user{RunUserBase() + 10'000};
    std::atomic<bool> stop{false};
    std::atomic<int> acknowledged_count{0};
    std::atomic<int> failed{0};
    std::mutex mutex;
    std::vector<Grab> acknowledged;
    std::vector<std::string> unexpected;
    std::vector<std::thread> threads;
    const auto deadline = Clock::now() + std::chrono::seconds(30);
    for (int t = 0; t < 16; ++t) {
      threads.emplace_back([&] {
        NginxClient mine;
        while (!stop.load() && Clock::now() < deadline) {
          const std::int64_t user = next_user.fetch_add(1);
          const auto reply = mine.Call("POST", "/v1/packets/" + packet + "/grab", tokens.For(user));
          if (reply.status == 410) return;
          if (reply.status == 200) {
            const auto body = Json(reply).as_object();
            const std::lock_guard lock(mutex);
            acknowledged.push_back(
                {user, body.at("amount_cents").as_int64(), body.at("seq").as_int64()});
            ++acknowledged_count;
          } else if (reply.status == 502 || reply.status == 503 || reply.status == 0) {
            ++failed;  // cut off by the kill: not acknowledged, the client's to retry
          } else {
            const std::lock_guard lock(mutex);
            unexpected.push_back(Show(reply));
          }
        }
      });
    }
    while (acknowledged_count.load() < 200 && Clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    const std::string victim_name = "api-" + std::to_string(kApiPorts[0]);
    const pid_t victim = static_cast<pid_t>(
        std::stol(ReadFile(std::filesystem::path(kRunDir) / "pids" / (victim_name + ".pid"))));
    ASSERT_EQ(::kill(victim, SIGKILL), 0);
    const int at_kill = acknowledged_count.load();
    for (auto& thread : threads) thread.join();
    const int after_kill = acknowledged_count.load() - at_kill;
    std::cerr << "kill -9 of " << victim_name << " after " << at_kill << " grabs; " << after_kill
              << " acknowledged after it, " << failed.load() << " cut off\n";
    EXPECT_TRUE(unexpected.empty()) << unexpected.size() << " unexpected, e.g. " << unexpected[0];
    EXPECT_GE(after_kill, 300) << "nginx did not route around the killed server";
    std::set<std::int64_t> seen_users;
    std::set<std::int64_t> seen_seqs;
    for (const Grab& grab : acknowledged) {
      EXPECT_TRUE(seen_users.insert(grab.user).second);
      EXPECT_TRUE(seen_seqs.insert(grab.seq).second) << "share " << grab.seq << " given twice";
    }
    json::object listed;
    const std::int64_t listed_sum =
        ExpectListed(client, sender_bearer, packet, acknowledged, &listed);
    EXPECT_EQ(listed_sum + listed.at("remaining_cents").as_int64(), 100000);
    ExpectCredited(tokens, acknowledged);

    // `up` again restarts only the killed server.
    const ScriptResult restart = RunCluster("up");
    EXPECT_EQ(restart.exit_code, 0) << restart.output;
    EXPECT_NE(restart.output.find("starting " + victim_name), std::string::npos) << restart.output;
    EXPECT_EQ(restart.output.find("starting worker"), std::string::npos) << restart.output;
    EXPECT_EQ(RunCluster("status").exit_code, 0);
  }

  // --- the audit: money conserved, every packet consistent.
  const CommandResult audit = RunRedpacket(
      {"audit", "--mode", "cluster", "--redis-nodes", "127.0.0.1:" + std::to_string(kRedisBasePort),
       "--mariadb-primary", "127.0.0.1:" + std::to_string(kMariaDbPort)});
  EXPECT_EQ(audit.exit_code, 0) << audit.output;

  // --- down: nothing left listening.
  const ScriptResult down = RunCluster("down");
  EXPECT_EQ(down.exit_code, 0) << down.output;
  for (int port : AllPorts())
    EXPECT_FALSE(Listened(port)) << "port " << port << " still listened on";
  EXPECT_NE(RunCluster("status").exit_code, 0);
  std::cerr << "the whole test took "
            << std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - started).count()
            << " s\n";
}

}  // namespace
}  // namespace redpacket::e2e
