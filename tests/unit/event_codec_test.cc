// The bus's event JSON (docs/API.md "Events"): exact encoding, round trips, and the strict
// decoder's refusal of everything that is not an event of the contract. Also domain::ParseTime.
#include "bus/codec/event_codec.h"

#include <gtest/gtest.h>

#include "domain/types.h"

namespace redpacket::bus::codec {
namespace {

using domain::LedgerEvent;

LedgerEvent Grab() {
  return LedgerEvent{LedgerEvent::Type::kGrab, 9007199254740993, 7, 567, 3, 1795627746123};
}
LedgerEvent Refund() {
  return LedgerEvent{LedgerEvent::Type::kRefund, 42, 5, 433, 0, 1795627746000};
}

TEST(EventCodec, EncodesAGrabExactlyAsTheContractSays) {
  EXPECT_EQ(EncodeEvent(Grab()),
            R"({"type":"grab","event_id":"g-9007199254740993-7","packet_id":"9007199254740993",)"
            R"("user_id":7,"amount_cents":567,"seq":3,"at":"2026-11-25T17:29:06.123Z"})");
}

TEST(EventCodec, EncodesARefundWithoutSeq) {
  EXPECT_EQ(EncodeEvent(Refund()),
            R"({"type":"refund","event_id":"r-42","packet_id":"42","user_id":5,)"
            R"("amount_cents":433,"at":"2026-11-25T17:29:06.000Z"})");
}

TEST(EventCodec, RoundTrips) {
  for (const LedgerEvent& event : {Grab(), Refund()}) {
    auto decoded = DecodeEvent(EncodeEvent(event));
    ASSERT_TRUE(decoded.ok()) << decoded.error().message;
    EXPECT_EQ(*decoded, event);
  }
  LedgerEvent empty_refund = Refund();
  empty_refund.amount_cents = 0;
  auto decoded = DecodeEvent(EncodeEvent(empty_refund));
  ASSERT_TRUE(decoded.ok()) << decoded.error().message;
  EXPECT_EQ(*decoded, empty_refund);
}

TEST(EventCodec, IgnoresUnknownFieldsAndFieldOrder) {
  auto decoded = DecodeEvent(
      R"({"at":"2026-11-25T18:29:06.123+01:00","seq":3,"amount_cents":567,"user_id":7,)"
      R"("packet_id":"9007199254740993","event_id":"g-9007199254740993-7","type":"grab","v":2})");
  ASSERT_TRUE(decoded.ok()) << decoded.error().message;
  EXPECT_EQ(*decoded, Grab());
}

// Each malformed input and a piece of the message that must name the problem.
struct MalformedCase {
  const char* json;
  const char* reason;
};

TEST(EventCodec, RefusesMalformedEventsWithAClearReason) {
  const MalformedCase cases[] = {
      {"", "not JSON"},
      {"{\"type\":", "not JSON"},
      {"[1,2]", "not a JSON object"},
      {R"({"event_id":"r-1"})", "\"type\" is missing"},
      {R"({"type":7})", "\"type\" must be a string"},
      {R"({"type":"deposit"})", "\"type\" must be \"grab\" or \"refund\""},
      {R"({"type":"refund","event_id":"r-1","packet_id":1,"user_id":5,"amount_cents":1,)"
       R"("at":"2026-11-25T17:29:06.000Z"})",
       "\"packet_id\" must be a string"},
      {R"({"type":"refund","event_id":"r-0","packet_id":"0","user_id":5,"amount_cents":1,)"
       R"("at":"2026-11-25T17:29:06.000Z"})",
       "\"packet_id\" must be a positive decimal"},
      {R"({"type":"refund","event_id":"r-1","packet_id":"01","user_id":5,"amount_cents":1,)"
       R"("at":"2026-11-25T17:29:06.000Z"})",
       "\"packet_id\" must be a positive decimal"},
      {R"({"type":"refund","event_id":"r-1","packet_id":"9223372036854775808","user_id":5,)"
       R"("amount_cents":1,"at":"2026-11-25T17:29:06.000Z"})",
       "\"packet_id\" must be a positive decimal"},
      {R"({"type":"refund","event_id":"r-1","packet_id":"1","user_id":"5","amount_cents":1,)"
       R"("at":"2026-11-25T17:29:06.000Z"})",
       "\"user_id\" must be an integer"},
      {R"({"type":"refund","event_id":"r-1","packet_id":"1","user_id":5.0,"amount_cents":1,)"
       R"("at":"2026-11-25T17:29:06.000Z"})",
       "\"user_id\" must be an integer"},
      {R"({"type":"refund","event_id":"r-1","packet_id":"1","user_id":0,"amount_cents":1,)"
       R"("at":"2026-11-25T17:29:06.000Z"})",
       "\"user_id\" is 0, out of range"},
      {R"({"type":"refund","event_id":"r-1","packet_id":"1","user_id":9007199254740992,)"
       R"("amount_cents":1,"at":"2026-11-25T17:29:06.000Z"})",
       "\"user_id\" is 9007199254740992, out of range"},
      {R"({"type":"refund","event_id":"r-1","packet_id":"1","user_id":18446744073709551615,)"
       R"("amount_cents":1,"at":"2026-11-25T17:29:06.000Z"})",
       "\"user_id\" is out of range"},
      {R"({"type":"refund","event_id":"r-1","packet_id":"1","user_id":5,"amount_cents":-1,)"
       R"("at":"2026-11-25T17:29:06.000Z"})",
       "\"amount_cents\" is -1, out of range"},
      {R"({"type":"refund","event_id":"r-1","packet_id":"1","user_id":5,)"
       R"("at":"2026-11-25T17:29:06.000Z"})",
       "\"amount_cents\" is missing"},
      {R"({"type":"refund","event_id":"r-1","packet_id":"1","user_id":5,"amount_cents":1,)"
       R"("seq":0,"at":"2026-11-25T17:29:06.000Z"})",
       "a refund has no \"seq\""},
      {R"({"type":"grab","event_id":"g-1-5","packet_id":"1","user_id":5,"amount_cents":0,)"
       R"("seq":1,"at":"2026-11-25T17:29:06.000Z"})",
       "\"amount_cents\" is 0, out of range [1,"},
      {R"({"type":"grab","event_id":"g-1-5","packet_id":"1","user_id":5,"amount_cents":1,)"
       R"("seq":0,"at":"2026-11-25T17:29:06.000Z"})",
       "\"seq\" is 0, out of range"},
      {R"({"type":"grab","event_id":"g-1-5","packet_id":"1","user_id":5,"amount_cents":1,)"
       R"("at":"2026-11-25T17:29:06.000Z"})",
       "\"seq\" is missing"},
      {R"({"type":"grab","event_id":"g-1-5","packet_id":"1","user_id":5,"amount_cents":1,)"
       R"("seq":1,"at":"yesterday"})",
       "\"at\" is not an RFC 3339 time"},
      {R"({"type":"grab","event_id":"g-1-5","packet_id":"1","user_id":5,"amount_cents":1,)"
       R"("seq":1})",
       "\"at\" is missing"},
      {R"({"type":"grab","event_id":"g-1-6","packet_id":"1","user_id":5,"amount_cents":1,)"
       R"("seq":1,"at":"2026-11-25T17:29:06.000Z"})",
       "\"event_id\" is \"g-1-6\" but the event's id is \"g-1-5\""},
      {R"({"type":"grab","packet_id":"1","user_id":5,"amount_cents":1,)"
       R"("seq":1,"at":"2026-11-25T17:29:06.000Z"})",
       "\"event_id\" is missing"},
  };
  for (const MalformedCase& test : cases) {
    auto decoded = DecodeEvent(test.json);
    ASSERT_FALSE(decoded.ok()) << test.json;
    EXPECT_EQ(decoded.error().code, domain::ErrorCode::kBadRequest) << test.json;
    EXPECT_NE(decoded.error().message.find(test.reason), std::string::npos)
        << test.json << "\n  gave: " << decoded.error().message << "\n  want: " << test.reason;
  }
}

TEST(ParseTime, IsTheInverseOfFormatTime) {
  for (std::int64_t millis : {0LL, 1LL, 999LL, 951782400000LL, 1795627746123LL, 4102444799999LL}) {
    const auto time = domain::FromUnixMillis(millis);
    auto parsed = domain::ParseTime(domain::FormatTime(time));
    ASSERT_TRUE(parsed.has_value()) << domain::FormatTime(time);
    EXPECT_EQ(domain::ToUnixMillis(*parsed), millis);
  }
}

TEST(ParseTime, AcceptsOffsetsAndFractionsOfAnyLength) {
  auto millis = [](const char* text) {
    auto time = domain::ParseTime(text);
    return time ? domain::ToUnixMillis(*time) : -1;
  };
  EXPECT_EQ(millis("1970-01-01T00:00:00Z"), 0);
  EXPECT_EQ(millis("1970-01-01T00:00:01.5Z"), 1500);
  EXPECT_EQ(millis("1970-01-01T00:00:01.123456789Z"), 1123);
  EXPECT_EQ(millis("1970-01-01T01:00:00+01:00"), 0);
  EXPECT_EQ(millis("1969-12-31T23:30:00-00:30"), 0);
  EXPECT_EQ(millis("2000-02-29t12:00:00z"), 951825600000);
}

TEST(ParseTime, RefusesWhatIsNotRfc3339) {
  for (const char* text :
       {"", "2026-11-25", "2026-11-25T17:29:06", "2026-11-25 17:29:06Z", "2026-13-01T00:00:00Z",
        "2026-02-30T00:00:00Z", "2026-11-25T24:00:00Z", "2026-11-25T17:60:00Z",
        "2026-11-25T17:29:60Z", "2026-11-25T17:29:06.Z", "2026-11-25T17:29:06+0100",
        "2026-11-25T17:29:06Zjunk", "26-11-25T17:29:06Z", "+2026-11-25T17:29:06Z"}) {
    EXPECT_FALSE(domain::ParseTime(text).has_value()) << text;
  }
}

// Found by fuzz/event_codec_fuzz.cc: a time beyond what a TimePoint holds overflowed the
// nanosecond conversion (undefined behaviour; garbage "at"), and the encoder wrote the fraction
// of a time before 1970 as a negative number.
TEST(ParseTime, RefusesTimesATimePointCannotHold) {
  for (const char* text : {"2262-04-12T00:00:00Z", "9999-12-31T23:59:59.999-23:59",
                           "1677-09-21T00:00:00Z", "0000-01-01T00:00:00+23:59"}) {
    EXPECT_FALSE(domain::ParseTime(text).has_value()) << text;
  }
  EXPECT_TRUE(domain::ParseTime("2262-04-11T00:00:00Z").has_value());
  EXPECT_TRUE(domain::ParseTime("1677-09-22T00:00:00Z").has_value());
  auto event = DecodeEvent(R"({"type":"refund","event_id":"r-1","packet_id":"1","user_id":1,)"
                           R"("amount_cents":0,"at":"3000-01-01T00:00:00Z"})");
  ASSERT_FALSE(event.ok());
  EXPECT_NE(event.error().message.find("RFC 3339"), std::string::npos) << event.error().message;
}

TEST(ParseTime, FormatsAndParsesTimesBefore1970) {
  for (std::int64_t millis :
       {-1LL, -500LL, -1000LL, -1001LL, -86'400'123LL, -9'000'000'000'000LL}) {
    const std::string text = domain::FormatTime(domain::FromUnixMillis(millis));
    EXPECT_EQ(text.find('-', 10), std::string::npos) << text;  // no minus sign after the date
    auto parsed = domain::ParseTime(text);
    ASSERT_TRUE(parsed.has_value()) << text;
    EXPECT_EQ(domain::ToUnixMillis(*parsed), millis) << text;
  }
  EXPECT_EQ(domain::FormatTime(domain::FromUnixMillis(-500)), "1969-12-31T23:59:59.500Z");
}

}  // namespace
}  // namespace redpacket::bus::codec
