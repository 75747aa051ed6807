// Driving an asio io_context from a test's own thread, for clients that run on one (the Redis
// Cluster client): until a condition holds, or for a while. Header-only; test code.
#pragma once

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <functional>

namespace redpacket::testing_support {

// Runs `io` until `done` holds; false after `limit`.
inline bool RunUntil(boost::asio::io_context& io, const std::function<bool()>& done,
                     std::chrono::milliseconds limit) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > end) return false;
    io.restart();
    io.run_one_for(std::chrono::milliseconds(10));
  }
  return true;
}

// Lets `io` run for `duration` (a client reconnecting, timers firing).
inline void RunFor(boost::asio::io_context& io, std::chrono::milliseconds duration) {
  io.restart();
  io.run_for(duration);
}

}  // namespace redpacket::testing_support
