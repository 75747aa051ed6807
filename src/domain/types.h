// Basic value types of the red packet domain: ids, money in integer cents, time.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace redpacket::domain {

using Cents = std::int64_t;     // money is always integer cents; never floating point
using UserId = std::int64_t;    // positive, below 2^53 (JavaScript-safe)
using PacketId = std::int64_t;  // positive 63-bit; written as a JSON string
using Clock = std::chrono::system_clock;
using TimePoint = Clock::time_point;

inline constexpr UserId kMaxUserId = (std::int64_t{1} << 53) - 1;
// All the money in the system: the sum of every deposit ever made never passes it (a deposit
// that would is refused). Money is conserved, so no balance, packet or credit can pass it
// either, and every amount stays a JavaScript-safe JSON number.
inline constexpr Cents kMaxTotalDepositsCents = (std::int64_t{1} << 53) - 1;

enum class PacketKind { kLucky, kEqual };
enum class PacketStatus { kOpen, kExhausted, kExpired, kRefunded };

const char* ToString(PacketKind kind);
const char* ToString(PacketStatus status);
bool ParsePacketKind(std::string_view text, PacketKind* kind);
bool ParsePacketStatus(std::string_view text, PacketStatus* status);

// RFC 3339 UTC with millisecond precision, e.g. "2026-11-25T17:29:06.123Z".
std::string FormatTime(TimePoint time);
// The inverse of FormatTime, and any RFC 3339 date-time: "YYYY-MM-DDTHH:MM:SS", an optional
// fraction (kept to the millisecond), then "Z" or "+hh:mm"/"-hh:mm". nullopt when malformed or
// outside what a TimePoint holds (1677-09-21 to 2262-04-11).
std::optional<TimePoint> ParseTime(std::string_view text);
std::int64_t ToUnixMillis(TimePoint time);
// Whole seconds since the epoch, truncated (what a token's expiry counts in).
std::int64_t ToUnixSeconds(TimePoint time);
TimePoint FromUnixMillis(std::int64_t millis);

}  // namespace redpacket::domain
