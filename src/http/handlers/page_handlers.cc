// What a browser or a tool reads: GET / (JSON, or a browser sent to the page), /openapi.json, and
// the web page (/app/..., assets/app_assets.h).
#include "http/assets/app_assets.h"
#include "http/assets/openapi.h"
#include "http/handlers/handlers.h"

namespace redpacket::http {

void HandleRoot(Call& call) {
  // A browser opening the address `make run` prints gets the page; every other client JSON.
  if (WantsHtml(call.request)) return MakeReply(call)(RedirectResponse("/app/"));
  Response response;
  response.body = R"({"message":"Red Packet System is running!"})";
  MakeReply(call)(std::move(response));
}

void HandleOpenApi(Call& call) {
  Response response;
  response.body = OpenApiJson();
  MakeReply(call)(std::move(response));
}

void HandleAppPage(Call& call) { MakeReply(call)(AppShellResponse(call.dev())); }

void HandleAppRedirect(Call& call) { MakeReply(call)(RedirectResponse("/app/")); }

void HandleAppAsset(Call& call) { MakeReply(call)(WebAssetResponse(call.request, call.params[0])); }

}  // namespace redpacket::http
