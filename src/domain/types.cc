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

TimePoint FromUnixMillis(std::int64_t millis) {
  return TimePoint(std::chrono::duration_cast<Clock::duration>(std::chrono::milliseconds(millis)));
}

std::string FormatTime(TimePoint time) {
  const std::int64_t millis = ToUnixMillis(time);
  std::time_t seconds = static_cast<std::time_t>(millis / 1000);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", utc.tm_year + 1900,
                     utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec,
                     millis % 1000);
}

}  // namespace redpacket::domain
