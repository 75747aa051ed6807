// Shared by the kafka tests: where the fixture's broker is, unique test ids, and waiting for
// completions that run on other threads. Header-only; thread-safe where it says so.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <random>
#include <string>

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

// A fresh id per call (packet ids, group names): the topic outlives each test, so every test
// reads only what it wrote.
inline std::int64_t UniqueId() {
  static std::mt19937_64 random(std::random_device{}());
  return static_cast<std::int64_t>(random() >> 24) + 1;  // 40 bits: fits any id of the contract
}

// Counts completions from any thread; a test waits for a count with a deadline.
class Counter {
 public:
  void Add() {
    std::lock_guard lock(mutex_);
    ++count_;
    changed_.notify_all();
  }
  bool WaitFor(int wanted, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] { return count_ >= wanted; });
  }
  int count() const {
    std::lock_guard lock(mutex_);
    return count_;
  }

 private:
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  int count_ = 0;
};

}  // namespace redpacket::bus::testing
