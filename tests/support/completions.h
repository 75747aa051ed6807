// Waiting in tests for work that completes on other threads (a bus's acknowledgements, a
// journal's durability), and ids that no other test or run picks. Header-only; Counter is
// thread-safe.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <random>

namespace redpacket::testing_support {

// A fresh id per call (packet ids, user ids, group names): a shared topic outlives each test, so
// every test reads only what it wrote. 40 bits: fits any id of the contract.
inline std::int64_t UniqueId() {
  static std::mt19937_64 random(std::random_device{}());
  return static_cast<std::int64_t>(random() >> 24) + 1;
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

}  // namespace redpacket::testing_support
