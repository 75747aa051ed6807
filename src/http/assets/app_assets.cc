// Serving the embedded web page: lookup by name, ETags, the headers of page responses.
#include "http/assets/app_assets.h"

#include <string>

namespace redpacket::http {
namespace {

// Page responses add only this to the security headers every response carries (kSecurityHeaders:
// no inline script or style, no framing, nosniff).
constexpr std::string_view kPageHeaders = "Referrer-Policy: no-referrer\r\n";

}  // namespace

const WebAsset* FindWebAsset(std::string_view name) {
  for (std::size_t i = 0; i < kWebAssetCount; ++i) {
    if (kWebAssets[i].name == name) return &kWebAssets[i];
  }
  return nullptr;
}

Response AppShellResponse(bool dev) {
  const WebAsset* shell = FindWebAsset("app.html");
  Response response;
  response.content_type = "text/html; charset=utf-8";
  response.body = shell != nullptr ? std::string(shell->body)
                                   : std::string("<!doctype html><title>redpacket</title>");
  // The one thing that differs per server: whether the sign-in offers --dev's user ids.
  constexpr std::string_view kMark = "data-dev=\"0\"";
  if (const auto at = response.body.find(kMark); dev && at != std::string::npos) {
    response.body.replace(at, kMark.size(), "data-dev=\"1\"");
  }
  response.headers = std::string(kPageHeaders) + "Cache-Control: no-cache\r\n";
  return response;
}

Response WebAssetResponse(const Request& request, std::string_view name) {
  const WebAsset* asset = FindWebAsset(name);
  if (asset == nullptr || name == "app.html") {
    return ErrorResponse(domain::ErrorCode::kNotFound, "no such file");
  }
  Response response;
  response.content_type = asset->content_type;
  // no-cache: revalidated on each load (a 304 costs one round trip and no body), so a new
  // binary's page is never mixed with an old cached script.
  response.headers = std::string(kPageHeaders) +
                     "Cache-Control: no-cache\r\nETag: " + std::string(asset->etag) + "\r\n";
  if (request.if_none_match.find(asset->etag) != std::string::npos) {
    response.status = 304;
    return response;
  }
  response.body = std::string(asset->body);
  return response;
}

Response RedirectResponse(std::string_view location) {
  Response response;
  response.status = 302;
  response.content_type = "text/plain; charset=utf-8";
  response.headers = "Location: " + std::string(location) + "\r\n";
  response.body = "see " + std::string(location) + "\n";
  return response;
}

bool WantsHtml(const Request& request) {
  return request.accept.find("text/html") != std::string::npos;
}

}  // namespace redpacket::http
