// An HTTP response as handlers produce it, and its serialization with pre-built header lines.
#pragma once

#include <string>
#include <string_view>

#include "domain/status.h"

namespace redpacket::http {

struct Response {
  int status = 200;
  std::string body;
  std::string_view content_type = "application/json";
  bool close = false;  // send Connection: close and close after writing
  int retry_after_s = 0;  // > 0: a Retry-After header (429)
};

// {"error":"<code>","message":"<text>"} with the code's HTTP status.
Response ErrorResponse(const domain::Error& error);
Response ErrorResponse(domain::ErrorCode code, std::string_view message);

// Appends the status line, headers and body to `out`.
void AppendWire(const Response& response, std::string& out);

}  // namespace redpacket::http
