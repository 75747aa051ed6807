// An HTTP response as handlers produce it, and its serialization with pre-built header lines.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "domain/status.h"

namespace redpacket::http {

class ResponseStream;  // server.h

struct Response {
  int status = 200;
  std::string body;
  std::string_view content_type = "application/json";
  bool close = false;  // send Connection: close and close after writing
  int retry_after_s = 0;  // > 0: a Retry-After header (429)
  std::string headers;    // more header lines, each "Name: value\r\n" (ETag, Location, ...)
  // Set for a long-lived body (Server-Sent Events): the head goes out without Content-Length and
  // with Connection: close, then this runs (on the connection's I/O thread) with the stream that
  // writes the rest of the body; the connection reads no further request.
  std::function<void(std::shared_ptr<ResponseStream>)> on_stream;
};

// {"error":"<code>","message":"<text>"} with the code's HTTP status.
Response ErrorResponse(const domain::Error& error);
Response ErrorResponse(domain::ErrorCode code, std::string_view message);

// Appends the status line, headers and body to `out`.
void AppendWire(const Response& response, std::string& out);

}  // namespace redpacket::http
