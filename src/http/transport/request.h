// One parsed HTTP request, holding only what the handlers use (no per-header allocations).
#pragma once

#include <boost/beast/http/verb.hpp>
#include <cstdint>
#include <string>
#include <string_view>

namespace redpacket::http {

struct Request {
  boost::beast::http::verb method = boost::beast::http::verb::unknown;
  std::string target;  // path and query as sent
  std::string authorization;
  bool has_authorization = false;  // the header was sent, even empty (then it is not valid: 401)
  std::string user_id_header;      // X-User-Id (accepted with --dev only)
  std::string request_id_header;   // X-Request-Id (echoed in logs)
  std::string accept;              // Accept (a browser asking for HTML at / is sent to /app/)
  std::string if_none_match;       // If-None-Match (the web page's assets: 304)
  std::string last_event_id;       // Last-Event-ID (Server-Sent Events resume after it)
  std::string body;
  bool keep_alive = true;
  std::uint64_t peer_key =
      0;  // the client's address, as AddressKey() (the rate limit's key without a caller)

  std::string_view path() const {
    std::string_view view(target);
    return view.substr(0, view.find('?'));
  }
  std::string_view query() const {
    std::string_view view(target);
    auto mark = view.find('?');
    // Never a null view (an absent query is an empty one at the end): Boost.URL rejects null.
    return mark == std::string_view::npos ? view.substr(view.size()) : view.substr(mark + 1);
  }
};

}  // namespace redpacket::http
