// The idempotency protocol: request_id limits, fingerprints, and the answer to a repeat.
#include "domain/idempotency.h"

#include <fmt/format.h>

#include <charconv>
#include <utility>

#include "domain/deposit_rules.h"

namespace redpacket::domain {
namespace {

// The number of characters of `text`, or nullopt when it is not valid UTF-8 (a truncated or
// overlong sequence, a surrogate, a code point past U+10FFFF).
std::optional<std::size_t> Utf8Characters(std::string_view text) {
  std::size_t characters = 0;
  for (std::size_t i = 0; i < text.size(); ++characters) {
    const auto lead = static_cast<unsigned char>(text[i]);
    std::size_t length = 0;
    char32_t code_point = 0;
    char32_t lowest = 0;
    if (lead < 0x80) {
      length = 1;
      code_point = lead;
    } else if ((lead & 0xE0) == 0xC0) {
      length = 2;
      code_point = lead & 0x1F;
      lowest = 0x80;
    } else if ((lead & 0xF0) == 0xE0) {
      length = 3;
      code_point = lead & 0x0F;
      lowest = 0x800;
    } else if ((lead & 0xF8) == 0xF0) {
      length = 4;
      code_point = lead & 0x07;
      lowest = 0x10000;
    } else {
      return std::nullopt;
    }
    if (text.size() - i < length) return std::nullopt;
    for (std::size_t k = 1; k < length; ++k) {
      const auto next = static_cast<unsigned char>(text[i + k]);
      if ((next & 0xC0) != 0x80) return std::nullopt;
      code_point = (code_point << 6) | (next & 0x3F);
    }
    if (code_point < lowest || code_point > 0x10FFFF ||
        (code_point >= 0xD800 && code_point <= 0xDFFF)) {
      return std::nullopt;
    }
    i += length;
  }
  return characters;
}

}  // namespace

Status CheckRequestId(std::string_view request_id) {
  if (request_id.empty()) return {};
  // Counted as the API counts it (JSON Schema's characters), the same in every ledger; 64
  // characters always fit MariaDB's VARCHAR(255) of utf8mb4, which counts characters too.
  const std::optional<std::size_t> characters = Utf8Characters(request_id);
  if (!characters || *characters > kMaxRequestIdCharacters) {
    return MakeError(
        ErrorCode::kBadRequest,
        fmt::format("request_id must be 1 to {} characters of UTF-8", kMaxRequestIdCharacters));
  }
  return {};
}

std::string DepositFingerprint(Cents amount_cents) {
  return fmt::format("deposit:{}", amount_cents);
}

std::string PacketFingerprint(const PacketSpec& spec) {
  // The greeting goes last: it is the only free text, so no separator inside it can shift a field.
  return fmt::format("packet:{}:{}:{}:{}:{}:{}", ToString(spec.kind), spec.total_cents, spec.count,
                     spec.expires_in_s,
                     spec.receiver_id ? std::to_string(*spec.receiver_id) : std::string("-"),
                     spec.greeting);
}

IdempotentRequest IdempotentRequest::Deposit(UserId user_id, std::string_view request_id,
                                             Cents amount_cents) {
  return IdempotentRequest{.user_id = user_id,
                           .kind = "deposit",
                           .request_id = request_id,
                           .fingerprint = DepositFingerprint(amount_cents)};
}

IdempotentRequest IdempotentRequest::CreatePacket(const PacketSpec& spec,
                                                  std::string_view request_id) {
  return IdempotentRequest{.user_id = spec.sender_id,
                           .kind = "create_packet",
                           .request_id = request_id,
                           .fingerprint = PacketFingerprint(spec)};
}

Result<IdempotentRequest> CheckedDeposit(UserId user_id, Cents amount_cents,
                                         std::string_view request_id) {
  if (Status valid = CheckDeposit(user_id, amount_cents); !valid.ok()) return valid.error();
  if (Status valid = CheckRequestId(request_id); !valid.ok()) return valid.error();
  return IdempotentRequest::Deposit(user_id, request_id, amount_cents);
}

Result<IdempotentRequest> CheckedCreatePacket(const PacketSpec& spec,
                                              const std::vector<Cents>& shares,
                                              std::string_view request_id) {
  if (Status valid = CheckShares(spec, shares); !valid.ok()) return valid.error();
  if (Status valid = CheckRequestId(request_id); !valid.ok()) return valid.error();
  return IdempotentRequest::CreatePacket(spec, request_id);
}

Result<std::optional<std::int64_t>> EarlierAnswer(const IdempotentRequest& request,
                                                  const std::optional<StoredAnswer>& stored) {
  if (!stored) return std::optional<std::int64_t>();
  // A request's fingerprint is never empty, so a legacy row's '' matches none (see the header).
  if (stored->fingerprint != request.fingerprint) {
    return MakeError(
        ErrorCode::kIdempotencyConflict,
        fmt::format("request_id '{}' was used for a different request", request.request_id));
  }
  const std::string& result = stored->result;
  std::int64_t value = 0;
  const auto [end, error] = std::from_chars(result.data(), result.data() + result.size(), value);
  if (error != std::errc() || end != result.data() + result.size()) {
    return MakeError(ErrorCode::kInternal,
                     fmt::format("idempotency result '{}' is not an integer", result));
  }
  return std::optional<std::int64_t>(value);
}

Result<PacketRecord> RepeatedCreate(PacketId packet_id, Result<std::optional<PacketRecord>> first) {
  if (!first.ok()) return first.error();
  if (!*first) {
    return MakeError(ErrorCode::kInternal,
                     fmt::format("idempotent packet {} is missing", packet_id));
  }
  PacketRecord packet = std::move(**first);
  packet.repeated = true;
  return packet;
}

}  // namespace redpacket::domain
