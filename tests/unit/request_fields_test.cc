// The field rules of request bodies and query strings (http/codec/request_fields.h): what is
// accepted, the 400 for what is not, and the query decoders on a view that is not the end of a
// string.
#include "http/codec/request_fields.h"

#include <gtest/gtest.h>

#include <string>

namespace redpacket::http {
namespace {

TEST(RequestFields, DecodesACreatePacketBody) {
  domain::Limits limits;
  auto fields = ParseCreatePacket(
      R"({"total_cents":1000,"count":10,"kind":"equal","greeting":"hi","receiver_id":7,"request_id":"r1"})",
      limits);
  ASSERT_TRUE(fields.ok()) << fields.error().message;
  EXPECT_EQ(fields->spec.total_cents, 1000);
  EXPECT_EQ(fields->spec.count, 10);
  EXPECT_EQ(fields->spec.kind, domain::PacketKind::kEqual);
  EXPECT_EQ(fields->spec.greeting, "hi");
  EXPECT_EQ(fields->spec.receiver_id, 7);
  EXPECT_EQ(fields->spec.expires_in_s, limits.max_expires_in_s);
  EXPECT_EQ(fields->request_id, "r1");
}

TEST(RequestFields, RefusesWithTheFirstProblemNamed) {
  domain::Limits limits;
  struct Case {
    const char* body;
    const char* message;
  };
  for (const Case& test : {
           Case{"", "the body is not valid JSON"},
           Case{"[1]", "the body must be a JSON object"},
           Case{R"({"count":1})", "total_cents is required"},
           Case{R"({"total_cents":1.5,"count":1})", "total_cents must be an integer"},
           Case{R"({"total_cents":18446744073709551615,"count":1})", "total_cents is out of range"},
           Case{R"({"total_cents":1,"count":1,"kind":"mega"})", "kind must be lucky or equal"},
           Case{R"({"total_cents":1,"count":1,"receiver_id":0})", "receiver_id is out of range"},
           Case{R"({"total_cents":1,"count":1,"request_id":""})",
                "request_id must be 1 to 64 characters"},
       }) {
    auto fields = ParseCreatePacket(test.body, limits);
    ASSERT_FALSE(fields.ok()) << test.body;
    EXPECT_EQ(fields.error().code, domain::ErrorCode::kBadRequest);
    EXPECT_EQ(fields.error().message.find(test.message), 0u)
        << test.body << ": " << fields.error().message;
  }
  EXPECT_FALSE(ParseDeposit(R"({"amount_cents":1000000000001})").ok());
  EXPECT_TRUE(ParseDeposit(R"({"amount_cents":1000000000000})").ok());
  EXPECT_FALSE(ParseCreateUser(R"({"name":""})").ok());
}

// Found by fuzz/request_fields_fuzz.cc: Boost.URL 1.81's parse_query reads up to a NUL, so the
// last value of a query view followed by more bytes ran on into them ("limit=5" of "limit=50&...").
TEST(RequestFields, QueriesEndWhereTheViewEnds) {
  const std::string buffer = "limit=50&kind=bogus";
  const std::string_view view = std::string_view(buffer).substr(0, 7);  // "limit=5"
  auto history = ParseHistoryQuery(view);
  ASSERT_TRUE(history.ok()) << history.error().message;
  EXPECT_EQ(history->limit, 5);
  EXPECT_EQ(history->kind, domain::HistoryKind::kReceived);

  const std::string seed = "user_id=7&red_packet_id=99";
  auto grab = ParseSeedGrabQuery(std::string_view(seed).substr(0, 25));  // "...&red_packet_id=9"
  ASSERT_TRUE(grab.ok()) << grab.error().message;
  EXPECT_EQ(grab->user_id, 7);
  EXPECT_EQ(grab->packet_id, 9);

  EXPECT_TRUE(ParseHistoryQuery(std::string_view(buffer).substr(0, 0)).ok());
  EXPECT_FALSE(ParseHistoryQuery("limit=101").ok());
  EXPECT_FALSE(ParseHistoryQuery("kind=all").ok());
}

TEST(RequestFields, ParsePositiveTakesDigitsInRangeOnly) {
  std::int64_t value = 0;
  EXPECT_TRUE(ParsePositive("9007199254740991", domain::kMaxUserId, &value));
  EXPECT_EQ(value, domain::kMaxUserId);
  for (const char* text :
       {"", "0", "-1", "+1", " 1", "1 ", "9007199254740992", "99999999999999999999"}) {
    EXPECT_FALSE(ParsePositive(text, domain::kMaxUserId, &value)) << text;
  }
}

}  // namespace
}  // namespace redpacket::http
