// libFuzzer target: arbitrary bytes as the body of POST /v1/users, /v1/users/{id}/deposit and
// /v1/packets, as the query of GET /v1/users/{id}/history and GET /grab, and as a path id.
// Properties: an accepted value is in its range, and writing it back out as JSON (or a query)
// decodes to the same value; a refusal is a 400 whose error body is valid JSON.
#include <boost/json.hpp>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "http/codec/request_fields.h"
#include "http/transport/response.h"

namespace {

// Characters (code points) of UTF-8, as the field rules count lengths (docs/openapi.yaml).
std::size_t Characters(std::string_view utf8) {
  std::size_t count = 0;
  for (const char c : utf8) count += (static_cast<unsigned char>(c) & 0xC0) != 0x80 ? 1 : 0;
  return count;
}

namespace json = boost::json;
using namespace redpacket;
using http::CreatePacketFields;

template <class T>
void CheckRefusal(const domain::Result<T>& result) {
  if (result.ok()) return;
  FUZZ_CHECK(result.error().code == domain::ErrorCode::kBadRequest);
  FUZZ_CHECK(!result.error().message.empty());
  const http::Response response = http::ErrorResponse(result.error());
  FUZZ_CHECK(response.status == 400);
  boost::system::error_code error;
  const json::value body = json::parse(response.body, error);
  FUZZ_CHECK(!error && body.is_object());
}

void CheckCreateUser(std::string_view body) {
  auto fields = http::ParseCreateUser(body);
  CheckRefusal(fields);
  if (!fields) return;
  FUZZ_CHECK(!fields->name.empty() && Characters(fields->name) <= 64);
  auto again = http::ParseCreateUser(json::serialize(json::object{{"name", fields->name}}));
  FUZZ_CHECK(again.ok() && again->name == fields->name);
}

void CheckDeposit(std::string_view body) {
  auto fields = http::ParseDeposit(body);
  CheckRefusal(fields);
  if (!fields) return;
  FUZZ_CHECK(fields->amount_cents >= 1 && fields->amount_cents <= http::kMaxDepositCents);
  FUZZ_CHECK(Characters(fields->request_id) <= 64);
  json::object out{{"amount_cents", fields->amount_cents}};
  if (!fields->request_id.empty()) out["request_id"] = fields->request_id;
  auto again = http::ParseDeposit(json::serialize(out));
  FUZZ_CHECK(again.ok() && again->amount_cents == fields->amount_cents &&
             again->request_id == fields->request_id);
}

void CheckCreatePacket(std::string_view body) {
  domain::Limits limits;
  auto fields = http::ParseCreatePacket(body, limits);
  CheckRefusal(fields);
  if (!fields) return;
  const domain::PacketSpec& spec = fields->spec;
  FUZZ_CHECK(spec.total_cents >= 1 && spec.count >= 1);
  FUZZ_CHECK(spec.kind == domain::PacketKind::kLucky || spec.kind == domain::PacketKind::kEqual);
  FUZZ_CHECK(Characters(spec.greeting) <= limits.max_greeting_bytes);
  FUZZ_CHECK(!spec.receiver_id ||
             (*spec.receiver_id >= 1 && *spec.receiver_id <= domain::kMaxUserId));
  FUZZ_CHECK(Characters(fields->request_id) <= 64);
  FUZZ_CHECK(spec.sender_id == 0);
  json::object out{{"total_cents", spec.total_cents},
                   {"count", spec.count},
                   {"kind", domain::ToString(spec.kind)},
                   {"greeting", spec.greeting},
                   {"expires_in_s", spec.expires_in_s}};
  if (spec.receiver_id) out["receiver_id"] = *spec.receiver_id;
  if (!fields->request_id.empty()) out["request_id"] = fields->request_id;
  auto again = http::ParseCreatePacket(json::serialize(out), limits);
  FUZZ_CHECK(again.ok());
  FUZZ_CHECK(again->spec.total_cents == spec.total_cents && again->spec.count == spec.count &&
             again->spec.kind == spec.kind && again->spec.greeting == spec.greeting &&
             again->spec.expires_in_s == spec.expires_in_s &&
             again->spec.receiver_id == spec.receiver_id &&
             again->request_id == fields->request_id);
  // What the service does next with it: the rules of the limits (any answer, no crash).
  domain::PacketSpec sent = spec;
  sent.sender_id = 1;
  (void)domain::ValidatePacketSpec(sent, limits);
}

void CheckQueries(std::string_view query) {
  auto history = http::ParseHistoryQuery(query);
  CheckRefusal(history);
  if (history) {
    FUZZ_CHECK(history->limit >= 1 && history->limit <= 100);
    const std::string written =
        std::string("kind=") +
        (history->kind == redpacket::domain::HistoryKind::kSent ? "sent" : "received") +
        "&limit=" + std::to_string(history->limit) +
        (history->cursor.empty() ? "" : "&cursor=" + history->cursor);  // kept as sent
    auto again = http::ParseHistoryQuery(written);
    FUZZ_CHECK(again.ok() && again->kind == history->kind && again->limit == history->limit &&
               again->cursor == history->cursor);
  }
  auto seed = http::ParseSeedGrabQuery(query);
  CheckRefusal(seed);
  if (seed) {
    FUZZ_CHECK(seed->user_id >= 1 && seed->user_id <= domain::kMaxUserId && seed->packet_id >= 1);
    auto again = http::ParseSeedGrabQuery("user_id=" + std::to_string(seed->user_id) +
                                          "&red_packet_id=" + std::to_string(seed->packet_id));
    FUZZ_CHECK(again.ok() && again->user_id == seed->user_id &&
               again->packet_id == seed->packet_id);
  }
}

void CheckPathId(std::string_view text) {
  for (const std::int64_t max : {std::int64_t{100}, domain::kMaxUserId, http::kMaxPacketId}) {
    std::int64_t value = 0;
    if (!http::ParsePositive(text, max, &value)) continue;
    FUZZ_CHECK(value >= 1 && value <= max);
    FUZZ_CHECK(text.find_first_not_of("0123456789") == std::string_view::npos);
    std::int64_t again = 0;
    FUZZ_CHECK(http::ParsePositive(std::to_string(value), max, &again) && again == value);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  CheckCreateUser(input);
  CheckDeposit(input);
  CheckCreatePacket(input);
  CheckQueries(input);
  CheckPathId(input);
  return 0;
}
