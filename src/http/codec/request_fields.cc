// The field rules of docs/API.md for request bodies and query strings (Boost.JSON, Boost.URL).
#include "http/codec/request_fields.h"

#include <fmt/format.h>

#include <algorithm>
#include <boost/json.hpp>
#include <boost/url/parse_query.hpp>
#include <charconv>

namespace redpacket::http {
namespace {

namespace json = boost::json;
using domain::ErrorCode;
using domain::MakeError;

// The body as a JSON object. An empty body is an error (every POST with a body needs one).
domain::Result<json::object> ParseBody(std::string_view body) {
  boost::system::error_code error;
  json::value value = json::parse(body, error);
  if (error)
    return MakeError(ErrorCode::kBadRequest, "the body is not valid JSON: " + error.message());
  if (!value.is_object())
    return MakeError(ErrorCode::kBadRequest, "the body must be a JSON object");
  return std::move(value.as_object());
}

// An integer field in [min, max]. Absent or null: `fallback` if given, else an error. Wrong type
// (string, float, bool) or out of range: an error naming the field.
domain::Result<std::int64_t> IntField(const json::object& body, std::string_view key,
                                      std::int64_t min, std::int64_t max,
                                      std::optional<std::int64_t> fallback) {
  const json::value* value = body.if_contains(key);
  if (value == nullptr || value->is_null()) {
    if (fallback) return *fallback;
    return MakeError(ErrorCode::kBadRequest, fmt::format("{} is required", key));
  }
  if (value->is_uint64()) {  // only values above INT64_MAX parse as uint64
    return MakeError(ErrorCode::kBadRequest,
                     fmt::format("{} is out of range [{}, {}]", key, min, max));
  }
  if (!value->is_int64())
    return MakeError(ErrorCode::kBadRequest, fmt::format("{} must be an integer", key));
  const std::int64_t number = value->get_int64();
  if (number < min || number > max) {
    return MakeError(ErrorCode::kBadRequest,
                     fmt::format("{} is out of range [{}, {}]", key, min, max));
  }
  return number;
}

// Characters (Unicode code points) of valid UTF-8, as JSON Schema's minLength/maxLength count
// them (docs/openapi.yaml): every byte but the continuation bytes 10xxxxxx.
std::size_t CharacterCount(std::string_view utf8) {
  return static_cast<std::size_t>(std::count_if(utf8.begin(), utf8.end(), [](char c) {
    return (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  }));
}

// A string field of min_chars to max_chars characters; absent or null gives `fallback` (an error
// when nullopt). The JSON parser has already refused invalid UTF-8.
domain::Result<std::string> StringField(const json::object& body, std::string_view key,
                                        std::size_t min_chars, std::size_t max_chars,
                                        std::optional<std::string> fallback) {
  const json::value* value = body.if_contains(key);
  if (value == nullptr || value->is_null()) {
    if (fallback) return std::move(*fallback);
    return MakeError(ErrorCode::kBadRequest, fmt::format("{} is required", key));
  }
  if (!value->is_string())
    return MakeError(ErrorCode::kBadRequest, fmt::format("{} must be a string", key));
  const json::string& text = value->get_string();
  const std::size_t length = CharacterCount(text);
  if (length < min_chars || length > max_chars) {
    return MakeError(ErrorCode::kBadRequest,
                     fmt::format("{} must be {} to {} characters", key, min_chars, max_chars));
  }
  return std::string(text);
}

// "request_id": 1-64 characters, optional (empty when absent).
domain::Result<std::string> RequestIdField(const json::object& body) {
  return StringField(body, "request_id", 1, 64, std::string());
}

// Boost.URL 1.81's parse_query measures its input again with strlen(data) (detail::query_ref is
// built from a const char*), so it reads up to the first NUL, past the end of a view that is not
// the tail of a string. Found by fuzz/request_fields_fuzz.cc. A copy ends where the query ends.
// Calls visit(key, value) for each parameter, in order, until one returns an error: that error,
// or kBadRequest when the query string is malformed.
template <class Visit>
domain::Status ForEachParam(std::string_view query, Visit visit) {
  const std::string copy(query);
  auto params = boost::urls::parse_query(copy);
  if (!params) return MakeError(ErrorCode::kBadRequest, "malformed query string");
  for (const auto& param : *params) {
    if (domain::Status visited = visit(param.key, param.value); !visited.ok()) return visited;
  }
  return {};
}

}  // namespace

bool ParsePositive(std::string_view text, std::int64_t max, std::int64_t* value) {
  if (text.empty() || text.size() > 19) return false;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), *value);
  return error == std::errc() && end == text.data() + text.size() && *value >= 1 && *value <= max;
}

domain::Result<CreateUserFields> ParseCreateUser(std::string_view body) {
  auto object = ParseBody(body);
  if (!object) return object.error();
  auto name = StringField(*object, "name", 1, 64, std::nullopt);
  if (!name) return name.error();
  return CreateUserFields{std::move(*name)};
}

domain::Result<DepositFields> ParseDeposit(std::string_view body) {
  auto object = ParseBody(body);
  if (!object) return object.error();
  auto amount = IntField(*object, "amount_cents", 1, kMaxDepositCents, std::nullopt);
  if (!amount) return amount.error();
  auto request_id = RequestIdField(*object);
  if (!request_id) return request_id.error();
  return DepositFields{*amount, std::move(*request_id)};
}

domain::Result<CreatePacketFields> ParseCreatePacket(std::string_view body,
                                                     const domain::Limits& limits) {
  constexpr std::int64_t kMin = std::numeric_limits<std::int64_t>::min();
  constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();
  auto object = ParseBody(body);
  if (!object) return object.error();
  CreatePacketFields fields;
  domain::PacketSpec& spec = fields.spec;
  auto total = IntField(*object, "total_cents", 1, kMax, std::nullopt);
  if (!total) return total.error();
  auto count = IntField(*object, "count", 1, kMax, std::nullopt);
  if (!count) return count.error();
  auto kind = StringField(*object, "kind", 1, 16, std::string("lucky"));
  if (!kind) return kind.error();
  if (!domain::ParsePacketKind(*kind, &spec.kind))
    return MakeError(ErrorCode::kBadRequest, "kind must be lucky or equal");
  auto greeting = StringField(*object, "greeting", 0, limits.max_greeting_bytes, std::string());
  if (!greeting) return greeting.error();
  auto expires = IntField(*object, "expires_in_s", kMin, kMax, limits.max_expires_in_s);
  if (!expires) return expires.error();
  const json::value* receiver = object->if_contains("receiver_id");
  if (receiver != nullptr && !receiver->is_null()) {
    auto receiver_id = IntField(*object, "receiver_id", 1, domain::kMaxUserId, std::nullopt);
    if (!receiver_id) return receiver_id.error();
    spec.receiver_id = *receiver_id;
  }
  auto request_id = RequestIdField(*object);
  if (!request_id) return request_id.error();
  spec.total_cents = *total;
  spec.count = *count;
  spec.greeting = std::move(*greeting);
  spec.expires_in_s = *expires;
  fields.request_id = std::move(*request_id);
  return fields;
}

domain::Result<HistoryQuery> ParseHistoryQuery(std::string_view query) {
  HistoryQuery out;
  domain::Status parsed =
      ForEachParam(query, [&out](std::string_view key, std::string_view value) -> domain::Status {
        if (key == "kind") {
          if (value == "sent") {
            out.kind = domain::HistoryKind::kSent;
          } else if (value == "received") {
            out.kind = domain::HistoryKind::kReceived;
          } else {
            return MakeError(ErrorCode::kBadRequest, "kind must be sent or received");
          }
        } else if (key == "limit") {
          if (!ParsePositive(value, 100, &out.limit))
            return MakeError(ErrorCode::kBadRequest, "limit must be 1 to 100");
        } else if (key == "cursor") {
          // The ledgers' cursors are row ids; the description's pattern is ^[1-9][0-9]{0,17}$.
          std::int64_t row = 0;
          if (value.size() > 18 || value.starts_with('0') ||
              !ParsePositive(value, kMaxPacketId, &row)) {
            return MakeError(ErrorCode::kBadRequest,
                             "cursor must be the next_cursor of an earlier page");
          }
          out.cursor = value;
        }
        return {};
      });
  if (!parsed.ok()) return parsed.error();
  return out;
}

domain::Result<SeedGrabQuery> ParseSeedGrabQuery(std::string_view query) {
  SeedGrabQuery out;
  bool have_user = false;
  bool have_packet = false;
  domain::Status parsed = ForEachParam(query, [&](std::string_view key, std::string_view value) {
    if (key == "user_id")
      have_user = ParsePositive(value, domain::kMaxUserId, &out.user_id);
    else if (key == "red_packet_id")
      have_packet = ParsePositive(value, kMaxPacketId, &out.packet_id);
    return domain::Status();
  });
  if (!parsed.ok()) return parsed.error();
  if (!have_user || !have_packet) {
    return MakeError(ErrorCode::kBadRequest, "user_id and red_packet_id must be positive integers");
  }
  return out;
}

}  // namespace redpacket::http
