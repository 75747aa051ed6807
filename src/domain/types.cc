// String forms of the domain enums and the RFC 3339 time format used on the wire.
#include "domain/types.h"

#include <ctime>

#include <fmt/format.h>

namespace redpacket::domain {

const char* ToString(PacketKind kind) { return kind == PacketKind::kLucky ? "lucky" : "equal"; }

const char* ToString(PacketStatus status) {
  switch (status) {
    case PacketStatus::kOpen: return "open";
    case PacketStatus::kExhausted: return "exhausted";
    case PacketStatus::kExpired: return "expired";
    case PacketStatus::kRefunded: return "refunded";
  }
  return "open";
}

bool ParsePacketKind(std::string_view text, PacketKind* kind) {
  if (text == "lucky") { *kind = PacketKind::kLucky; return true; }
  if (text == "equal") { *kind = PacketKind::kEqual; return true; }
  return false;
}

bool ParsePacketStatus(std::string_view text, PacketStatus* status) {
  for (auto candidate : {PacketStatus::kOpen, PacketStatus::kExhausted, PacketStatus::kExpired,
                         PacketStatus::kRefunded}) {
    if (text == ToString(candidate)) { *status = candidate; return true; }
  }
  return false;
}

std::int64_t ToUnixMillis(TimePoint time) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(time.time_since_epoch()).count();
}

std::int64_t ToUnixSeconds(TimePoint time) {
  return std::chrono::duration_cast<std::chrono::seconds>(time.time_since_epoch()).count();
}

TimePoint FromUnixMillis(std::int64_t millis) {
  return TimePoint(std::chrono::duration_cast<Clock::duration>(std::chrono::milliseconds(millis)));
}

std::string FormatTime(TimePoint time) {
  const std::int64_t millis = ToUnixMillis(time);
  // Floor, not truncation: 1969-12-31T23:59:59.500Z is -500 ms, second -1 and 500 ms into it.
  const std::int64_t fraction = ((millis % 1000) + 1000) % 1000;
  std::time_t seconds = static_cast<std::time_t>((millis - fraction) / 1000);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", utc.tm_year + 1900,
                     utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec, fraction);
}

namespace {

// Reads exactly `digits` decimal digits at `text[*at]`, advancing `*at`; false if any is missing.
bool ReadDigits(std::string_view text, std::size_t* at, int digits, int* value) {
  *value = 0;
  for (int i = 0; i < digits; ++i, ++*at) {
    if (*at >= text.size() || text[*at] < '0' || text[*at] > '9') return false;
    *value = *value * 10 + (text[*at] - '0');
  }
  return true;
}

bool Expect(std::string_view text, std::size_t* at, char wanted) {
  if (*at >= text.size() || (text[*at] != wanted &&
                             !(wanted == 'T' && text[*at] == 't') &&
                             !(wanted == 'Z' && text[*at] == 'z'))) {
    return false;
  }
  ++*at;
  return true;
}

}  // namespace

std::optional<TimePoint> ParseTime(std::string_view text) {
  std::size_t at = 0;
  int year, month, day, hour, minute, second;
  if (!ReadDigits(text, &at, 4, &year) || !Expect(text, &at, '-') ||
      !ReadDigits(text, &at, 2, &month) || !Expect(text, &at, '-') ||
      !ReadDigits(text, &at, 2, &day) || !Expect(text, &at, 'T') ||
      !ReadDigits(text, &at, 2, &hour) || !Expect(text, &at, ':') ||
      !ReadDigits(text, &at, 2, &minute) || !Expect(text, &at, ':') ||
      !ReadDigits(text, &at, 2, &second)) {
    return std::nullopt;
  }
  const std::chrono::year_month_day date{std::chrono::year(year), std::chrono::month(month),
                                         std::chrono::day(day)};
  // Second 60 (a leap second) is refused: the wire never carries one (FormatTime cannot).
  if (!date.ok() || hour > 23 || minute > 59 || second > 59) return std::nullopt;
  std::int64_t millis = 0;
  if (at < text.size() && text[at] == '.') {
    ++at;
    int digits = 0;
    for (; at < text.size() && text[at] >= '0' && text[at] <= '9'; ++at, ++digits) {
      if (digits < 3) millis = millis * 10 + (text[at] - '0');
    }
    if (digits == 0) return std::nullopt;
    for (; digits < 3; ++digits) millis *= 10;
  }
  std::int64_t offset_minutes = 0;
  if (at < text.size() && (text[at] == '+' || text[at] == '-')) {
    const bool negative = text[at] == '-';
    ++at;
    int offset_hours, offset_mins;
    if (!ReadDigits(text, &at, 2, &offset_hours) || !Expect(text, &at, ':') ||
        !ReadDigits(text, &at, 2, &offset_mins) || offset_hours > 23 || offset_mins > 59) {
      return std::nullopt;
    }
    offset_minutes = (negative ? -1 : 1) * (offset_hours * 60 + offset_mins);
  } else if (!Expect(text, &at, 'Z')) {
    return std::nullopt;
  }
  if (at != text.size()) return std::nullopt;
  const auto days = std::chrono::sys_days(date).time_since_epoch().count();
  const std::int64_t seconds_since_epoch =
      static_cast<std::int64_t>(days) * 86400 + hour * 3600 + minute * 60 + second -
      offset_minutes * 60;
  // A TimePoint counts nanoseconds in an int64: it holds 1677-09-21 to 2262-04-11. Beyond, the
  // conversion would overflow, so such a time is refused like a malformed one.
  constexpr std::int64_t kMaxMillis =
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::duration::max()).count();
  const std::int64_t since_epoch_millis = seconds_since_epoch * 1000 + millis;
  if (since_epoch_millis > kMaxMillis || since_epoch_millis < -kMaxMillis) return std::nullopt;
  return FromUnixMillis(since_epoch_millis);
}

}  // namespace redpacket::domain
