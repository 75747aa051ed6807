// Response serialization: the status line and fixed headers (with the security headers) are
// constants, only Content-Type, Content-Length and Retry-After vary.
#include "http/transport/response.h"

#include <fmt/format.h>

#include <boost/json/serialize.hpp>
#include <boost/json/string.hpp>

namespace redpacket::http {
namespace {

std::string_view StatusLine(int status) {
  switch (status) {
    case 200:
      return "HTTP/1.1 200 OK\r\n";
    case 201:
      return "HTTP/1.1 201 Created\r\n";
    case 302:
      return "HTTP/1.1 302 Found\r\n";
    case 304:
      return "HTTP/1.1 304 Not Modified\r\n";
    case 400:
      return "HTTP/1.1 400 Bad Request\r\n";
    case 401:
      return "HTTP/1.1 401 Unauthorized\r\n";
    case 402:
      return "HTTP/1.1 402 Payment Required\r\n";
    case 403:
      return "HTTP/1.1 403 Forbidden\r\n";
    case 404:
      return "HTTP/1.1 404 Not Found\r\n";
    case 405:
      return "HTTP/1.1 405 Method Not Allowed\r\n";
    case 409:
      return "HTTP/1.1 409 Conflict\r\n";
    case 410:
      return "HTTP/1.1 410 Gone\r\n";
    case 413:
      return "HTTP/1.1 413 Payload Too Large\r\n";
    case 429:
      return "HTTP/1.1 429 Too Many Requests\r\n";
    case 500:
      return "HTTP/1.1 500 Internal Server Error\r\n";
    case 503:
      return "HTTP/1.1 503 Service Unavailable\r\n";
    default:
      return "HTTP/1.1 500 Internal Server Error\r\n";
  }
}

}  // namespace

Response ErrorResponse(domain::ErrorCode code, std::string_view message) {
  Response response;
  response.status = domain::HttpStatus(code);
  response.body = fmt::format(R"({{"error":"{}","message":{}}})", domain::ErrorName(code),
                              boost::json::serialize(boost::json::string(message)));
  return response;
}

Response ErrorResponse(const domain::Error& error) {
  return ErrorResponse(error.code, error.message);
}

void AppendWire(const Response& response, std::string& out) {
  out.append(StatusLine(response.status));
  out.append("Server: redpacket\r\n");
  out.append(kSecurityHeaders);
  out.append("Content-Type: ");
  out.append(response.content_type);
  char digits[24];
  auto end = digits;
  if (!response.on_stream) {  // a stream's body ends when the connection closes
    out.append("\r\nContent-Length: ");
    end = fmt::format_to(digits, "{}", response.body.size());
    out.append(digits, end);
  }
  if (response.retry_after_s > 0) {
    out.append("\r\nRetry-After: ");
    end = fmt::format_to(digits, "{}", response.retry_after_s);
    out.append(digits, end);
  }
  if (!response.allow.empty()) {
    out.append("\r\nAllow: ");
    out.append(response.allow);
  }
  out.append("\r\n");
  out.append(response.headers);
  out.append(response.close ? "Connection: close\r\n\r\n" : "\r\n");
  out.append(response.body);
}

}  // namespace redpacket::http
