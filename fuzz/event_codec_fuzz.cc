// libFuzzer target: arbitrary bytes as a Kafka message of the event bus (bus/codec DecodeEvent).
// Properties: an accepted event is within the contract's ranges, and encoding it then decoding the
// encoding gives the same event, whose encoding is the same bytes again (one canonical form).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "bus/codec/event_codec.h"
#include "fuzz_check.h"

using namespace redpacket;
using domain::LedgerEvent;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  auto event = bus::codec::DecodeEvent(input);
  if (!event) {
    FUZZ_CHECK(event.error().code == domain::ErrorCode::kBadRequest && !event.error().message.empty());
    return 0;
  }
  FUZZ_CHECK(event->packet_id >= 1);
  FUZZ_CHECK(event->user_id >= 1 && event->user_id <= domain::kMaxUserId);
  if (event->type == LedgerEvent::Type::kGrab) {
    FUZZ_CHECK(event->amount_cents >= 1 && event->seq >= 1);
  } else {
    FUZZ_CHECK(event->type == LedgerEvent::Type::kRefund);
    FUZZ_CHECK(event->amount_cents >= 0 && event->seq == 0);
  }
  const std::string encoded = bus::codec::EncodeEvent(*event);
  auto again = bus::codec::DecodeEvent(encoded);
  FUZZ_CHECK(again.ok());
  FUZZ_CHECK(*again == *event);
  FUZZ_CHECK(bus::codec::EncodeEvent(*again) == encoded);
  return 0;
}
