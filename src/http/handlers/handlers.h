// Every handler of the API's routing table (api.cc), by the file that holds it. A handler parses
// and validates the request, calls the service, and turns its result into the response
// (docs/API.md). Each runs on the request's I/O thread and never blocks; the service answers later,
// on any thread.
#pragma once

#include "http/handlers/call.h"

namespace redpacket::http {

// ops_handlers.cc: probes and metrics
void HandleHealth(Call& call);
void HandleReady(Call& call);
void HandleMetrics(Call& call);

// user_handlers.cc: /v1/users
void HandleCreateUser(Call& call);
void HandleDeposit(Call& call);
void HandleBalance(Call& call);
void HandleHistory(Call& call);

// packet_handlers.cc: /v1/packets, and --dev's GET /grab
void HandleCreatePacket(Call& call);
void HandleGrab(Call& call);
void HandleSeedGrab(Call& call);
void HandlePacket(Call& call);
void HandlePacketEvents(Call& call);

// page_handlers.cc: what a browser or a tool reads (/, /openapi.json, the web page)
void HandleRoot(Call& call);
void HandleOpenApi(Call& call);
void HandleAppPage(Call& call);
void HandleAppRedirect(Call& call);
void HandleAppAsset(Call& call);

}  // namespace redpacket::http
