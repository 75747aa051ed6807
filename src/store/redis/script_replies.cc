// Decoding of the Lua scripts' replies (see script_replies.h).
#include "store/redis/script_replies.h"

#include <algorithm>
#include <charconv>
#include <string_view>
#include <unordered_map>

#include "domain/grab_rules.h"

namespace redpacket::store::redis {
namespace {

using domain::ErrorCode;
using net::redis::Reply;

// The order grab.lua lists the immutable fields in (HMGET).
constexpr std::string_view kMetaFields[] = {"sender",   "total",      "count",      "kind",
                                            "receiver", "created_ms", "expires_ms", "greeting"};

bool ParseInt(std::string_view text, std::int64_t* value) {
  if (text.empty()) return false;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, *value);
  return ec == std::errc() && ptr == end;
}

// An integer reply, or a bulk string holding a decimal integer.
bool ToInt(const Reply& reply, std::int64_t* value) {
  if (reply.IsInteger()) {
    *value = reply.integer();
    return true;
  }
  return reply.IsString() && ParseInt(reply.string(), value);
}

const std::string* Text(const Reply& reply) {
  if (reply.IsString()) return &reply.string();
  if (reply.IsStatus()) return &reply.status();
  return nullptr;
}

using Fields = std::unordered_map<std::string_view, std::string_view>;

std::optional<PacketMeta> MetaFromFields(const Fields& fields) {
  auto get = [&](std::string_view name) -> std::optional<std::string_view> {
    auto it = fields.find(name);
    if (it == fields.end()) return std::nullopt;
    return it->second;
  };
  PacketMeta meta;
  auto sender = get("sender");
  auto total = get("total");
  auto count = get("count");
  auto kind = get("kind");
  auto receiver = get("receiver");
  auto created = get("created_ms");
  auto expires = get("expires_ms");
  if (!sender || !total || !count || !kind || !receiver || !created || !expires)
    return std::nullopt;
  if (!ParseInt(*sender, &meta.sender_id) || !ParseInt(*total, &meta.total_cents) ||
      !ParseInt(*count, &meta.count) || !ParseInt(*created, &meta.created_ms) ||
      !ParseInt(*expires, &meta.expires_ms) || !domain::ParsePacketKind(*kind, &meta.kind)) {
    return std::nullopt;
  }
  if (!receiver->empty()) {
    std::int64_t receiver_id = 0;
    if (!ParseInt(*receiver, &receiver_id)) return std::nullopt;
    meta.receiver_id = receiver_id;
  }
  if (auto greeting = get("greeting")) meta.greeting = std::string(*greeting);
  return meta;
}

// A flat array of bulk strings "field", "value", ... (HGETALL).
std::optional<Fields> PairsToFields(const Reply& reply) {
  if (!reply.IsArray() || reply.array().size() % 2 != 0) return std::nullopt;
  Fields fields;
  const auto& items = reply.array();
  for (std::size_t i = 0; i < items.size(); i += 2) {
    if (!items[i].IsString() || !items[i + 1].IsString()) return std::nullopt;
    fields.emplace(items[i].string(), items[i + 1].string());
  }
  return fields;
}

// "amount:seq:at_ms:token" (the token may be empty).
bool ParseGrabValue(std::string_view value, domain::Cents* amount, std::int64_t* seq,
                    std::int64_t* at_ms) {
  std::int64_t* parts[] = {amount, seq, at_ms};
  for (std::int64_t* part : parts) {
    const auto colon = value.find(':');
    if (colon == std::string_view::npos) return false;
    if (!ParseInt(value.substr(0, colon), part)) return false;
    value.remove_prefix(colon + 1);
  }
  return true;
}

}  // namespace

std::optional<GrabReply> ParseGrabReply(const Reply& reply) {
  if (!reply.IsArray() || reply.array().size() != 8) return std::nullopt;
  const auto& items = reply.array();
  const std::string* code = Text(items[0]);
  const std::string* entry = Text(items[7]);
  if (code == nullptr || entry == nullptr) return std::nullopt;
  static const std::pair<std::string_view, GrabReply::Outcome> kCodes[] = {
      {"ok", GrabReply::Outcome::kOk},
      {"conflict", GrabReply::Outcome::kConflict},
      {"gone_expired", GrabReply::Outcome::kGoneExpired},
      {"gone_empty", GrabReply::Outcome::kGoneEmpty},
      {"forbidden", GrabReply::Outcome::kForbidden},
      {"unknown", GrabReply::Outcome::kUnknown},
      {"loading", GrabReply::Outcome::kLoading},
  };
  const auto* found = std::find_if(std::begin(kCodes), std::end(kCodes),
                                   [&](const auto& entry) { return entry.first == *code; });
  if (found == std::end(kCodes)) return std::nullopt;
  GrabReply decoded;
  decoded.outcome = found->second;
  std::int64_t same = 0;
  if (!ToInt(items[1], &decoded.amount_cents) || !ToInt(items[2], &decoded.seq) ||
      !ToInt(items[3], &decoded.remaining_count) || !ToInt(items[4], &same) ||
      !ToInt(items[5], &decoded.at_ms) || !items[6].IsArray()) {
    return std::nullopt;
  }
  decoded.same_request = same != 0;
  decoded.outbox_id = *entry;
  if (decoded.outcome == GrabReply::Outcome::kOk && decoded.outbox_id.empty()) return std::nullopt;
  const auto& meta = items[6].array();
  if (!meta.empty()) {
    if (meta.size() != std::size(kMetaFields)) return std::nullopt;
    Fields fields;
    for (std::size_t i = 0; i < meta.size(); ++i) {
      if (!meta[i].IsString()) return std::nullopt;  // nil: a field missing from the hash
      fields.emplace(kMetaFields[i], meta[i].string());
    }
    decoded.meta = MetaFromFields(fields);
    if (!decoded.meta) return std::nullopt;
  }
  return decoded;
}

GrabResult ToGrabResult(const GrabReply& reply) {
  using Outcome = GrabReply::Outcome;
  switch (reply.outcome) {
    case Outcome::kOk:
    case Outcome::kConflict: {
      // Another request's repeat is refused (409) with what the first grab took.
      const bool own = reply.outcome == Outcome::kOk || reply.same_request;
      GrabResult result =
          own ? GrabResult{} : GrabResult::Refused(domain::GrabDecision::kAlreadyGrabbed);
      result.amount_cents = reply.amount_cents;
      result.seq = reply.seq;
      result.remaining_count = reply.remaining_count;
      return result;
    }
    case Outcome::kGoneExpired: {
      GrabResult result = GrabResult::Refused(domain::GrabDecision::kExpired);
      result.remaining_count = reply.remaining_count;
      return result;
    }
    case Outcome::kGoneEmpty:
      return GrabResult::Refused(domain::GrabDecision::kEmpty);
    case Outcome::kForbidden:
      return GrabResult::Refused(domain::GrabDecision::kForbidden);
    case Outcome::kUnknown:
      return GrabResult::NotHeld();
    case Outcome::kLoading:
      return GrabResult::Failed(ErrorCode::kUnavailable,
                                "the packet is still being loaded; try again");
  }
  return GrabResult::Failed(ErrorCode::kInternal, "unexpected grab outcome");
}

std::optional<LoadReply> ParseLoadReply(const Reply& reply) {
  if (!reply.IsArray() || reply.array().size() != 4) return std::nullopt;
  const auto& items = reply.array();
  const std::string* code = Text(items[0]);
  const std::string* status = Text(items[1]);
  if (code == nullptr || status == nullptr) return std::nullopt;
  LoadReply decoded;
  if (*code == "created") {
    decoded.outcome = LoadReply::Outcome::kCreated;
  } else if (*code == "exists") {
    decoded.outcome = LoadReply::Outcome::kExists;
  } else if (*code == "loaded") {
    decoded.outcome = LoadReply::Outcome::kLoaded;
  } else if (*code == "missing") {
    decoded.outcome = LoadReply::Outcome::kMissing;
  } else {
    return std::nullopt;
  }
  decoded.status = *status;
  if (!ToInt(items[2], &decoded.shares_loaded) || !ToInt(items[3], &decoded.grabs_loaded)) {
    return std::nullopt;
  }
  return decoded;
}

std::optional<CloseReply> ParseCloseReply(const Reply& reply) {
  if (!reply.IsArray() || reply.array().size() != 6) return std::nullopt;
  const auto& items = reply.array();
  const std::string* code = Text(items[0]);
  const std::string* status = Text(items[3]);
  const std::string* entry = Text(items[5]);
  if (code == nullptr || status == nullptr || entry == nullptr) return std::nullopt;
  static const std::pair<std::string_view, CloseReply::Outcome> kCodes[] = {
      {"closed", CloseReply::Outcome::kClosed},   {"already", CloseReply::Outcome::kAlready},
      {"open", CloseReply::Outcome::kOpen},       {"exhausted", CloseReply::Outcome::kExhausted},
      {"loading", CloseReply::Outcome::kLoading}, {"unknown", CloseReply::Outcome::kUnknown},
  };
  const auto* found = std::find_if(std::begin(kCodes), std::end(kCodes),
                                   [&](const auto& entry) { return entry.first == *code; });
  if (found == std::end(kCodes)) return std::nullopt;
  CloseReply decoded;
  decoded.outcome = found->second;
  decoded.status = *status;
  decoded.outbox_id = *entry;
  if (!ToInt(items[1], &decoded.refund_cents) || !ToInt(items[2], &decoded.sender_id) ||
      !ToInt(items[4], &decoded.closed_ms)) {
    return std::nullopt;
  }
  return decoded;
}

domain::Result<std::vector<OutboxEntry>> ParseOutboxEntries(const Reply& reply, int slot) {
  auto malformed = [](const std::string& what) {
    return domain::MakeError(ErrorCode::kInternal, "malformed outbox entry: " + what);
  };
  if (!reply.IsArray()) return malformed("not an array");
  std::vector<OutboxEntry> entries;
  entries.reserve(reply.array().size());
  for (const Reply& item : reply.array()) {
    if (!item.IsArray() || item.array().size() != 2) return malformed("not {id, fields}");
    const std::string* id = Text(item.array()[0]);
    auto fields = PairsToFields(item.array()[1]);
    if (id == nullptr || !fields) return malformed("no id or fields");
    OutboxEntry entry;
    entry.shard = slot;
    entry.id = *id;
    auto field = [&](std::string_view name, std::int64_t* value) {
      auto it = fields->find(name);
      return it != fields->end() && ParseInt(it->second, value);
    };
    auto type = fields->find("t");
    std::int64_t packet_id = 0, user_id = 0, amount_cents = 0, seq = 0, at_millis = 0;
    if (type == fields->end() || (type->second != "g" && type->second != "r") ||
        !field("p", &packet_id) || !field("u", &user_id) || !field("a", &amount_cents) ||
        !field("s", &seq) || !field("at", &at_millis)) {
      return malformed("entry " + *id + " lacks a field");
    }
    // A refund's "s" is always 0 (close.lua).
    entry.event = type->second == "g"
                      ? domain::LedgerEvent::Grab(packet_id, user_id, amount_cents, seq, at_millis)
                      : domain::LedgerEvent::Refund(packet_id, user_id, amount_cents, at_millis);
    entries.push_back(std::move(entry));
  }
  return entries;
}

domain::Result<std::optional<PacketSnapshot>> ParseSnapshotReply(const Reply& reply,
                                                                 domain::PacketId packet_id,
                                                                 domain::TimePoint now) {
  auto malformed = [](const std::string& what) {
    return domain::MakeError(ErrorCode::kInternal, "malformed snapshot reply: " + what);
  };
  if (!reply.IsArray() || reply.array().size() != 3) return malformed("not a 3-element array");
  const auto& items = reply.array();
  auto meta_fields = PairsToFields(items[0]);
  if (!meta_fields) return malformed("meta is not field/value pairs");
  if (meta_fields->empty()) return std::optional<PacketSnapshot>();
  auto status_text = meta_fields->find("status");
  if (status_text == meta_fields->end()) return malformed("meta has no status");
  // Being loaded, or reserved for a restore from the ledger: not held yet.
  if (status_text->second == "loading" || status_text->second == "reserved") {
    return std::optional<PacketSnapshot>();
  }
  auto meta = MetaFromFields(*meta_fields);
  if (!meta) return malformed("meta lacks an immutable field");

  PacketSnapshot snapshot;
  domain::PacketRecord& record = snapshot.record;
  record.packet_id = packet_id;
  record.spec.sender_id = meta->sender_id;
  record.spec.kind = meta->kind;
  record.spec.total_cents = meta->total_cents;
  record.spec.count = meta->count;
  record.spec.greeting = meta->greeting;
  record.spec.expires_in_s = (meta->expires_ms - meta->created_ms) / 1000;
  record.spec.receiver_id = meta->receiver_id;
  record.created_at = domain::FromUnixMillis(meta->created_ms);
  record.expires_at = domain::FromUnixMillis(meta->expires_ms);
  if (!domain::ParsePacketStatus(status_text->second, &record.status)) {
    return malformed("unknown status '" + std::string(status_text->second) + "'");
  }
  // As in the memory store, refund_cents is shown once the refund is durable (status refunded).
  if (auto refund = meta_fields->find("refund");
      refund != meta_fields->end() && record.status == domain::PacketStatus::kRefunded) {
    std::int64_t cents = 0;
    if (!ParseInt(refund->second, &cents)) return malformed("refund is not a number");
    record.refund_cents = cents;
  }

  auto grab_fields = PairsToFields(items[1]);
  if (!grab_fields) return malformed("grabs are not field/value pairs");
  record.grabs.reserve(grab_fields->size());
  domain::Cents grabbed = 0;
  for (const auto& [user, value] : *grab_fields) {
    domain::Grab grab;
    std::int64_t at_ms = 0;
    if (!ParseInt(user, &grab.user_id) ||
        !ParseGrabValue(value, &grab.amount_cents, &grab.seq, &at_ms)) {
      return malformed("grab '" + std::string(user) + "' -> '" + std::string(value) + "'");
    }
    grab.grabbed_at = domain::FromUnixMillis(at_ms);
    grabbed += grab.amount_cents;
    record.grabs.push_back(grab);
  }
  std::sort(record.grabs.begin(), record.grabs.end(),
            [](const domain::Grab& a, const domain::Grab& b) { return a.seq < b.seq; });
  if (!items[2].IsInteger()) return malformed("shares left is not an integer");
  snapshot.remaining_count = items[2].integer();
  snapshot.remaining_cents = meta->total_cents - grabbed;
  // An open packet past its expiry is expired even before the sweeper gets to it.
  if (record.status == domain::PacketStatus::kOpen && now >= record.expires_at) {
    record.status = domain::PacketStatus::kExpired;
  }
  return std::optional<PacketSnapshot>(std::move(snapshot));
}

}  // namespace redpacket::store::redis
