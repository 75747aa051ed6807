// The small subcommands: migrate, audit, token, seed (serve and worker have files of their own).
#include "app/commands.h"

#include <fmt/format.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json.hpp>
#include <filesystem>
#include <iostream>
#include <thread>

#include "app/cluster_config.h"
#include "audit/audit.h"
#include "http/access/token.h"
#include "http/client/client.h"
#include "ledger/mariadb/mariadb_ledger.h"
#include "ledger/sqlite/sqlite_ledger.h"
#include "store/redis/redis_store.h"

namespace redpacket::app {

void SetUpLogging(const std::string& level) {
  auto logger = spdlog::stderr_color_mt("redpacket");
  spdlog::set_default_logger(logger);
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%eZ level=%l thread=%t %v",
                      spdlog::pattern_time_type::utc);
  spdlog::set_level(spdlog::level::from_str(level));
}

int RunMigrate(const Config& config) {
  SetUpLogging(config.log_level);
  std::unique_ptr<ledger::Ledger> ledger;
  std::string where;
  try {
    if (config.mode == "cluster") {
      const ledger::MariaDbOptions primary = MariaDbPrimaryFrom(config);
      where = "MariaDB " + ledger::MariaDbAddress(primary) + "/" + primary.database;
      ledger = ledger::OpenMariaDbLedger(primary);
    } else {
      std::filesystem::create_directories(config.data_dir);
      const auto file = std::filesystem::path(config.data_dir) / "ledger.sqlite";
      where = file.string();
      ledger = ledger::OpenSqliteLedger(file);
    }
  } catch (const std::exception& error) {
    spdlog::critical("{}", error.what());
    return 1;
  }
  if (auto status = ledger->Migrate(); !status) {
    spdlog::critical("migration of {} failed: {}", where, status.error().message);
    return 1;
  }
  std::cout << "ledger schema is current: " << where << "\n";
  return 0;
}

namespace {

audit::AuditReport AuditCluster(const Config& config, std::chrono::seconds pending_deadline) {
  ClusterOptions options = ClusterOptionsFrom(config);
  // One snapshot of the whole ledger: on a big one that read takes longer than a request's.
  options.primary.read_timeout = std::chrono::minutes(10);
  auto ledger = ledger::OpenMariaDbLedger(options.primary);
  boost::asio::io_context io;
  auto work = boost::asio::make_work_guard(io);
  std::thread loop([&io] { io.run(); });
  std::vector<boost::asio::io_context*> contexts{&io};
  audit::AuditReport report;
  std::exception_ptr failure;
  {
    // No listener for recorded events: the audit reads, it never grabs nor sweeps.
    auto store = std::make_unique<store::redis::RedisStore>(contexts, options.redis_seeds);
    try {
      report = audit::RunClusterAudit(*ledger, *store, {pending_deadline, &domain::SystemTime()});
    } catch (...) {
      failure = std::current_exception();
    }
    // The store's connections live on `io`: destroy it on that thread's side of a stop.
    work.reset();
    io.stop();
    loop.join();
  }
  if (failure) std::rethrow_exception(failure);
  return report;
}

}  // namespace

int RunAudit(const Config& config, std::chrono::seconds pending_deadline) {
  SetUpLogging(config.log_level);
  audit::AuditReport report;
  try {
    report = config.mode == "cluster" ? AuditCluster(config, pending_deadline)
                                      : audit::RunAudit(config.data_dir);
  } catch (const std::exception& error) {
    std::cerr << "audit: " << error.what() << "\n";
    return 2;
  }
  for (const auto& line : report.checked) std::cout << "checked: " << line << "\n";
  for (const auto& line : report.violations) std::cout << "VIOLATION: " << line << "\n";
  std::cout << (report.ok()
                    ? "audit OK\n"
                    : fmt::format("audit FAILED: {} violations\n", report.violations.size()));
  return report.ok() ? 0 : 1;
}

int RunToken(const Config& config, std::int64_t user_id, std::int64_t ttl_s, bool admin) {
  http::TokenClaims claims;
  claims.user_id = user_id;
  claims.admin = admin;
  claims.expires_unix_s = domain::ToUnixSeconds(domain::SystemTime().Now()) + ttl_s;
  std::cout << http::SignToken(claims, EffectiveTokenSecrets(config).front()) << "\n";
  return 0;
}

int RunSeed(const Config& config, const SeedOptions& options) {
  SetUpLogging("warn");
  namespace json = boost::json;
  const std::string secret = EffectiveTokenSecrets(config).front();
  const std::int64_t now = domain::ToUnixSeconds(domain::SystemTime().Now());
  auto bearer = [&](domain::UserId user, bool admin) {
    return std::map<std::string, std::string>{
        {"Authorization", "Bearer " + http::SignToken({user, now + 3600, admin}, secret)}};
  };
  http::Client client(options.host, options.port);
  const auto admin = bearer(1, true);
  std::vector<domain::UserId> users;
  for (int i = 0; i < options.users; ++i) {
    auto response = client.Post("/v1/users", fmt::format(R"({{"name":"user{}"}})", i + 1), admin);
    if (response.status != 201) {
      std::cerr << "seed: creating a user failed: " << response.status << " " << response.body
                << "\n";
      return 1;
    }
    const auto user_id = json::parse(response.body).at("user_id").as_int64();
    users.push_back(user_id);
    response = client.Post(
        fmt::format("/v1/users/{}/deposit", user_id),
        fmt::format(R"({{"amount_cents":100000,"request_id":"seed-{}"}})", user_id), admin);
    if (response.status != 200) {
      std::cerr << "seed: deposit failed: " << response.status << " " << response.body << "\n";
      return 1;
    }
  }
  std::cout << fmt::format("seed: {} users ({}..{}), 1000.00 CNY each\n", users.size(),
                           users.front(), users.back());
  for (int i = 0; i < options.packets; ++i) {
    const domain::UserId sender = users[static_cast<std::size_t>(i) % users.size()];
    auto response = client.Post(
        "/v1/packets",
        // Within the default limits; an equal packet's total divides by its count.
        fmt::format(R"({{"total_cents":{},"count":{},"kind":"{}","greeting":"恭喜发财 #{}"}})",
                    1000 * (1 + i % 10), i % 2 ? 10 : 5 + i % 6, i % 2 ? "equal" : "lucky", i + 1),
        bearer(sender, false));
    if (response.status != 201) {
      std::cerr << "seed: creating a packet failed: " << response.status << " " << response.body
                << "\n";
      return 1;
    }
    std::cout << "seed: packet " << json::parse(response.body).at("packet_id").as_string().c_str()
              << " from user " << sender << "\n";
  }
  return 0;
}

}  // namespace redpacket::app
