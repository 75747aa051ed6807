// The subcommands of the `redpacket` binary (serve_command.cc, worker_command.cc, commands.cc). Each returns the process exit code.
#pragma once

#include <chrono>

#include "app/config.h"

namespace redpacket::app {

int RunServe(const Config& config);
int RunWorker(const Config& config);
int RunMigrate(const Config& config);
int RunAudit(const Config& config, std::chrono::seconds pending_deadline);
int RunToken(const Config& config, std::int64_t user_id, std::int64_t ttl_s, bool admin);
struct SeedOptions {
  std::string host = "127.0.0.1";
  std::uint16_t port = 8080;
  int users = 10;
  int packets = 5;
};
int RunSeed(const Config& config, const SeedOptions& options);

// Text logs on stderr, UTC timestamps, logfmt-style fields.
void SetUpLogging(const std::string& level);

}  // namespace redpacket::app
