// Shared by the kafka tests: where the fixture's broker is, unique test ids, and waiting for
// completions that run on other threads. Header-only.
#pragma once

#include <cstdlib>
#include <string>

#include "tests/support/completions.h"

namespace redpacket::bus::testing {

// The broker that the kafka_broker fixture started (REDPACKET_KAFKA_PORT, default 9092).
inline std::string KafkaPort() {
  const char* port = std::getenv("REDPACKET_KAFKA_PORT");
  return port != nullptr && *port != '\0' ? port : "9092";
}
inline std::string KafkaBrokers() { return "127.0.0.1:" + KafkaPort(); }

// Runs scripts/kafka with `arguments` for the fixture's run directory and port; its exit status.
inline int RunKafkaScript(const std::string& arguments) {
  const char* script = std::getenv("REDPACKET_KAFKA_SCRIPT");
  const char* run_dir = std::getenv("REDPACKET_KAFKA_RUN_DIR");
  std::string command = std::string(script != nullptr ? script : "scripts/kafka") + " " +
                        arguments + " --port " + KafkaPort();
  if (run_dir != nullptr) command += std::string(" --run-dir ") + run_dir;
  return std::system(command.c_str());
}

// Shared with the other tests (tests/support/completions.h).
using testing_support::Counter;
using testing_support::UniqueId;

}  // namespace redpacket::bus::testing
