// One API request in flight (Api::Call) and how its handler answers (Reply: the route's metrics,
// a log line for a server error, the response), with the path checks the handlers share. A Call
// lives on its I/O thread; a Reply is a value that may answer from any thread, once.
#pragma once

#include <array>
#include <boost/json/value.hpp>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "http/access/caller.h"
#include "http/handlers/api.h"

namespace redpacket::http {

struct Api::Call {
  Api* api;
  std::size_t route;  // index in the routing table (api.cc); its size: no route matched
  Request request;
  Responder respond;
  std::chrono::steady_clock::time_point started;
  std::array<std::string_view, 2> params;  // the {id}s of the path, in order
  std::optional<Caller> caller;            // set by the routing for kUser and kAdmin routes

  service::RedPacketService& service() const { return api->service_; }
  Metrics& metrics() const { return *api->metrics_; }
  PacketEvents* events() const { return api->events_; }
  bool dev() const { return api->options_.dev; }
};

using Call = Api::Call;

// Finishes a call: metrics, a log line for server errors, the response to the connection.
// Holds only what it needs by value so it can run on any thread after the Call is gone.
struct Reply {
  Metrics* metrics;
  std::size_t route;
  Responder respond;
  std::chrono::steady_clock::time_point started;
  std::string request_id;

  void operator()(Response response) const;
  void Error(const domain::Error& error) const;
  void Error(domain::ErrorCode code, std::string_view message) const;
  void Json(int status, const boost::json::value& value) const;
};

Reply MakeReply(const Call& call);

// The path's `index`th {id} as an integer in [1, max]; otherwise replies 400 naming `what`.
std::optional<std::int64_t> PathId(const Call& call, std::size_t index, std::int64_t max,
                                   std::string_view what, const Reply& reply);

// The user id of the path (/v1/users/{id}/...) when the caller may read that account: it is the
// caller's own, or the caller is an admin. Otherwise replies 400 (not an id) or 403.
std::optional<domain::UserId> ReadableAccount(const Call& call, const Reply& reply);

}  // namespace redpacket::http
