// JSON bodies of the write requests (docs/API.md), for the tests that send many of them, over
// HTTP (tests/e2e) or in-process (tests/unit/api_*). An empty request_id sends none.
#pragma once

#include <boost/json.hpp>
#include <cstdint>
#include <string>

namespace redpacket::testing_support {

// POST /v1/users/{id}/deposit
inline std::string DepositBody(std::int64_t amount, const std::string& request_id) {
  boost::json::object body{{"amount_cents", amount}};
  if (!request_id.empty()) body["request_id"] = request_id;
  return boost::json::serialize(body);
}

// POST /v1/packets: a lucky packet.
inline std::string CreateBody(std::int64_t total, std::int64_t count,
                              const std::string& request_id) {
  boost::json::object body{{"total_cents", total}, {"count", count}, {"kind", "lucky"}};
  if (!request_id.empty()) body["request_id"] = request_id;
  return boost::json::serialize(body);
}

}  // namespace redpacket::testing_support
