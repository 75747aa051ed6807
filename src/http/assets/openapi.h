// The API's OpenAPI 3.1 description (docs/openapi.yaml) as JSON, compiled into the binary by the
// build (embed_openapi.py); served at GET /openapi.json. Thread-safe: a constant.
#pragma once

#include <string_view>

namespace redpacket::http {

std::string_view OpenApiJson();

}  // namespace redpacket::http
