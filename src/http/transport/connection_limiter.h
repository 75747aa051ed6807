// The connection caps of the server: at most `max_connections` open at once, and at most
// `max_per_address` from one client address. Thread-safe: an atomic total, and a mutex over the
// per-address counts, taken only when a connection is accepted or closed (never per request).
#pragma once

#include <atomic>
#include <boost/asio/ip/address.hpp>
#include <cstdint>
#include <mutex>
#include <unordered_map>

namespace redpacket::http {

// A client address as a 64-bit key with the top bit set (user ids, the other keys of the rate
// limiter, stay below 2^53). IPv4 (and IPv4-mapped IPv6) exactly; other IPv6 addresses hashed.
std::uint64_t AddressKey(const boost::asio::ip::address& address);

class ConnectionLimiter {
 public:
  enum class Verdict { kAdmitted, kServerFull, kAddressFull };

  // 0: no cap of that kind.
  ConnectionLimiter(std::size_t max_connections, std::size_t max_per_address)
      : max_connections_(max_connections), max_per_address_(max_per_address) {}

  // Counts a new connection from `address_key` unless a cap is reached. Every kAdmitted needs
  // one Release.
  Verdict TryAdmit(std::uint64_t address_key);
  void Release(std::uint64_t address_key);

 private:
  const std::size_t max_connections_;
  const std::size_t max_per_address_;
  std::atomic<std::size_t> open_{0};
  std::mutex mutex_;
  std::unordered_map<std::uint64_t, std::size_t> per_address_;  // only addresses with connections
};

}  // namespace redpacket::http
