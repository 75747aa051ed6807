// The web page (web/: app.html, app.js, ops.js, style.css), built into the binary by
// cmake/embed_web_assets.cmake, and the responses that serve it: the HTML shell at /app/,
// /app/p/{id} and /app/ops, the assets at /app/static/<name> (ETag, 304, Cache-Control), and the
// redirect of a browser's GET / to /app/. Every page response carries a Content-Security-Policy
// that forbids inline scripts and styles and framing. Pure functions; thread-safe.
#pragma once

#include <cstddef>
#include <string_view>

#include "http/transport/request.h"
#include "http/transport/response.h"

namespace redpacket::http {

struct WebAsset {
  std::string_view name;  // "app.js"
  std::string_view content_type;
  std::string_view etag;  // quoted, e.g. "\"0123456789abcdef\""
  std::string_view body;
};
extern const WebAsset kWebAssets[];  // generated (web_assets_data.cc)
extern const std::size_t kWebAssetCount;

const WebAsset* FindWebAsset(std::string_view name);

// The HTML shell of every page; the script reads the page from the address. `dev`: the sign-in
// offers a user id (X-User-Id) instead of a token only.
Response AppShellResponse(bool dev);
// /app/static/<name>: 200 with the asset, 304 when If-None-Match names its ETag, 404 otherwise.
Response WebAssetResponse(const Request& request, std::string_view name);
// 302 to `location` (a path of ours).
Response RedirectResponse(std::string_view location);
// A browser asking for a page (Accept names text/html).
bool WantsHtml(const Request& request);

}  // namespace redpacket::http
