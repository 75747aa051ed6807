// An HTTP response as handlers produce it, and its serialization with pre-built header lines.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "domain/status.h"

namespace redpacket::http {

class ResponseStream;  // request_handler.h

struct Response {
  int status = 200;
  std::string body;
  std::string_view content_type = "application/json";
  bool close = false;     // send Connection: close and close after writing
  int retry_after_s = 0;  // > 0: a Retry-After header (429)
  std::string allow;      // non-empty: an Allow header (405), e.g. "GET"
  std::string headers;    // more header lines, each "Name: value\r\n" (ETag, Location, ...)
  // Set for a long-lived body (Server-Sent Events): the head goes out without Content-Length and
  // with Connection: close, then this runs (on the connection's I/O thread) with the stream that
  // writes the rest of the body; the connection reads no further request.
  std::function<void(std::shared_ptr<ResponseStream>)> on_stream;
};

// Header lines (each ending in CRLF) that every response carries, whatever writes it. The policy
// forbids inline scripts and styles and any framing: the web page loads its scripts and styles
// from its own files, and user text (greetings, names) can never run as script even if a page
// were to render it as HTML. docs/openapi.yaml lists them as required on every response.
inline constexpr std::string_view kSecurityHeaders =
    "Content-Security-Policy: default-src 'self'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'\r\n"
    "X-Content-Type-Options: nosniff\r\n"
    "X-Frame-Options: DENY\r\n";

// {"error":"<code>","message":"<text>"} with the code's HTTP status.
Response ErrorResponse(const domain::Error& error);
Response ErrorResponse(domain::ErrorCode code, std::string_view message);

// Appends the status line, headers (kSecurityHeaders among them) and body to `out`.
void AppendWire(const Response& response, std::string& out);

}  // namespace redpacket::http
