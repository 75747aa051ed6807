// A Redis node address ("127.0.0.1:7001") and parsing of node lists from configuration.
// Pure values: no I/O, safe from any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace redpacket::net::redis {

struct Endpoint {
  std::string host;
  std::uint16_t port = 0;

  std::string ToString() const;
  bool operator==(const Endpoint&) const = default;
};

// "host:port"; the port is after the last ':' so "::1:7001" works. nullopt when malformed.
std::optional<Endpoint> ParseEndpoint(std::string_view text);
// "a:1,b:2" (spaces around commas allowed). nullopt when any entry is malformed or none is given.
std::optional<std::vector<Endpoint>> ParseEndpointList(std::string_view text);

}  // namespace redpacket::net::redis
