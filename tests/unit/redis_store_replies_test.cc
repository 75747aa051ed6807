// Decoding of the Redis store's Lua replies and the grab outcome -> GrabResult mapping, on
// hand-built replies shaped like the scripts' (src/store/redis/lua). No server.
#include <gtest/gtest.h>

#include "store/redis/script_replies.h"

namespace redpacket::store::redis {
namespace {

using domain::ErrorCode;
using net::redis::Reply;

Reply S(std::string text) { return Reply(std::move(text)); }
Reply I(std::int64_t value) { return Reply(value); }
Reply A(Reply::Array items) { return Reply(std::move(items)); }

Reply MetaArray() {
  return A({S("1"), S("10000"), S("10"), S("lucky"), S(""), S("1700000000000"), S("1700086400000"),
            S("恭喜发财")});
}

TEST(RedisStoreReplies, GrabOkWithMetadata) {
  auto reply = ParseGrabReply(
      A({S("ok"), I(567), I(3), I(7), I(0), I(1700000001000), MetaArray(), S("1700000001000-0")}));
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->outcome, GrabReply::Outcome::kOk);
  EXPECT_EQ(reply->outbox_id, "1700000001000-0");
  EXPECT_EQ(reply->amount_cents, 567);
  EXPECT_EQ(reply->seq, 3);
  EXPECT_EQ(reply->remaining_count, 7);
  EXPECT_EQ(reply->at_ms, 1700000001000);
  ASSERT_TRUE(reply->meta);
  EXPECT_EQ(reply->meta->sender_id, 1);
  EXPECT_EQ(reply->meta->total_cents, 10000);
  EXPECT_EQ(reply->meta->count, 10);
  EXPECT_EQ(reply->meta->kind, domain::PacketKind::kLucky);
  EXPECT_FALSE(reply->meta->receiver_id);
  EXPECT_EQ(reply->meta->expires_ms, 1700086400000);
  EXPECT_EQ(reply->meta->greeting, "恭喜发财");

  const GrabResult result = ToGrabResult(*reply);
  EXPECT_EQ(result.code, ErrorCode::kOk);
  EXPECT_EQ(result.amount_cents, 567);
  EXPECT_EQ(result.seq, 3);
  EXPECT_EQ(result.remaining_count, 7);
}

TEST(RedisStoreReplies, ConflictOfAnotherRequestIs409WithTheFirstAmount) {
  auto reply = ParseGrabReply(A({S("conflict"), I(30), I(1), I(1), I(0), I(5), A({}), S("")}));
  ASSERT_TRUE(reply);
  EXPECT_FALSE(reply->same_request);
  EXPECT_FALSE(reply->meta);
  const GrabResult result = ToGrabResult(*reply);
  EXPECT_EQ(result.code, ErrorCode::kConflict);
  EXPECT_EQ(result.amount_cents, 30);
  EXPECT_EQ(result.seq, 1);
}

TEST(RedisStoreReplies, ConflictOfTheSameRequestIsItsOwnSuccess) {
  auto reply = ParseGrabReply(A({S("conflict"), I(30), I(4), I(1), I(1), I(5), A({}), S("")}));
  ASSERT_TRUE(reply);
  EXPECT_TRUE(reply->same_request);
  const GrabResult result = ToGrabResult(*reply);
  EXPECT_EQ(result.code, ErrorCode::kOk);
  EXPECT_EQ(result.amount_cents, 30);
  EXPECT_EQ(result.seq, 4);
}

TEST(RedisStoreReplies, OtherGrabOutcomes) {
  auto code_of = [](const char* code) {
    auto reply = ParseGrabReply(A({S(code), I(0), I(0), I(2), I(0), I(0), A({}), S("")}));
    EXPECT_TRUE(reply) << code;
    return reply ? ToGrabResult(*reply) : GrabResult{};
  };
  EXPECT_EQ(code_of("gone_expired").code, ErrorCode::kGone);
  EXPECT_EQ(code_of("gone_expired").remaining_count, 2);
  EXPECT_EQ(code_of("gone_empty").code, ErrorCode::kGone);
  EXPECT_EQ(code_of("forbidden").code, ErrorCode::kForbidden);
  EXPECT_EQ(code_of("loading").code, ErrorCode::kUnavailable);
  const GrabResult unknown = code_of("unknown");
  EXPECT_EQ(unknown.code, ErrorCode::kNotFound);
  EXPECT_TRUE(unknown.not_held) << "not held: the caller then asks the ledger";
}

TEST(RedisStoreReplies, ExclusiveReceiverInMetadata) {
  Reply::Array meta = MetaArray().array();
  meta[4] = S("9");
  meta[3] = S("equal");
  auto reply = ParseGrabReply(A({S("forbidden"), I(0), I(0), I(0), I(0), I(0), A(meta), S("")}));
  ASSERT_TRUE(reply);
  ASSERT_TRUE(reply->meta);
  EXPECT_EQ(reply->meta->receiver_id, 9);
  EXPECT_EQ(reply->meta->kind, domain::PacketKind::kEqual);
}

TEST(RedisStoreReplies, MalformedGrabRepliesAreRejected) {
  EXPECT_FALSE(ParseGrabReply(S("ok")));
  EXPECT_FALSE(ParseGrabReply(A({S("ok"), I(1), I(1), I(1), I(0), I(0), A({})})));  // too short
  EXPECT_FALSE(ParseGrabReply(A({S("maybe"), I(1), I(1), I(1), I(0), I(0), A({}), S("1-0")})));
  EXPECT_FALSE(ParseGrabReply(A({S("ok"), S("x"), I(1), I(1), I(0), I(0), A({}), S("1-0")})));
  // A grab without its outbox entry would be a decision whose event nobody publishes.
  EXPECT_FALSE(ParseGrabReply(A({S("ok"), I(1), I(1), I(1), I(0), I(0), A({}), S("")})));
  Reply::Array meta = MetaArray().array();
  meta[1] = Reply();  // a field missing from the hash
  EXPECT_FALSE(ParseGrabReply(A({S("ok"), I(1), I(1), I(1), I(0), I(0), A(meta), S("1-0")})));
  meta = MetaArray().array();
  meta[3] = S("weird");
  EXPECT_FALSE(ParseGrabReply(A({S("ok"), I(1), I(1), I(1), I(0), I(0), A(meta), S("1-0")})));
}

TEST(RedisStoreReplies, LoadAndCloseReplies) {
  auto load = ParseLoadReply(A({S("exists"), S("loading"), I(10000), I(0)}));
  ASSERT_TRUE(load);
  EXPECT_EQ(load->outcome, LoadReply::Outcome::kExists);
  EXPECT_EQ(load->status, "loading");
  EXPECT_EQ(load->shares_loaded, 10000);
  EXPECT_FALSE(ParseLoadReply(A({S("created"), S("open"), I(1)})));
  EXPECT_FALSE(ParseLoadReply(A({S("nope"), S("open"), I(1), I(0)})));

  auto closed = ParseCloseReply(
      A({S("closed"), I(433), I(1), S("refunded"), I(1700000000000), S("1700000000000-3")}));
  ASSERT_TRUE(closed);
  EXPECT_EQ(closed->outcome, CloseReply::Outcome::kClosed);
  EXPECT_EQ(closed->outbox_id, "1700000000000-3");
  EXPECT_EQ(closed->refund_cents, 433);
  EXPECT_EQ(closed->sender_id, 1);
  EXPECT_EQ(closed->closed_ms, 1700000000000);
  auto again =
      ParseCloseReply(A({S("already"), I(433), I(1), S("refunded"), I(1700000000000), S("")}));
  ASSERT_TRUE(again);
  EXPECT_EQ(again->outcome, CloseReply::Outcome::kAlready);
  EXPECT_EQ(again->status, "refunded");
  auto unknown = ParseCloseReply(A({S("unknown"), I(0), I(0), S(""), I(0), S("")}));
  ASSERT_TRUE(unknown);
  EXPECT_EQ(unknown->outcome, CloseReply::Outcome::kUnknown);
  EXPECT_FALSE(ParseCloseReply(A({S("closed"), I(1), I(1), S("refunded"), I(1)})));
}

TEST(RedisStoreReplies, OutboxEntries) {
  auto entries = ParseOutboxEntries(
      A({A({S("1700000000000-0"), A({S("t"), S("g"), S("p"), S("42"), S("u"), S("7"), S("a"),
                                     S("567"), S("s"), S("3"), S("at"), S("1700000000000")})}),
         A({S("1700000000001-0"), A({S("t"), S("r"), S("p"), S("42"), S("u"), S("1"), S("a"),
                                     S("433"), S("s"), S("0"), S("at"), S("1700000000001")})})}),
      1234);
  ASSERT_TRUE(entries.ok()) << entries.error().message;
  ASSERT_EQ(entries->size(), 2u);
  EXPECT_EQ((*entries)[0].shard, 1234);
  EXPECT_EQ((*entries)[0].id, "1700000000000-0");
  EXPECT_EQ((*entries)[0].event,
            (domain::LedgerEvent{domain::LedgerEvent::Type::kGrab, 42, 7, 567, 3, 1700000000000}));
  EXPECT_EQ((*entries)[1].event, (domain::LedgerEvent{domain::LedgerEvent::Type::kRefund, 42, 1,
                                                      433, 0, 1700000000001}));
  // An entry that lacks a field is never published nor removed: the whole read fails.
  EXPECT_FALSE(
      ParseOutboxEntries(A({A({S("1-0"), A({S("t"), S("g"), S("p"), S("42")})})}), 1).ok());
  EXPECT_FALSE(ParseOutboxEntries(S("x"), 1).ok());
  EXPECT_TRUE(ParseOutboxEntries(A({}), 1)->empty());
}

Reply MetaPairs(const char* status, const char* refund = nullptr) {
  Reply::Array pairs = {S("sender"),     S("1"),       S("total"),      S("100"),
                        S("count"),      S("3"),       S("kind"),       S("lucky"),
                        S("greeting"),   S("hi"),      S("receiver"),   S(""),
                        S("created_ms"), S("1000000"), S("expires_ms"), S("1060000"),
                        S("grabbed"),    S("50"),      S("status"),     S(status)};
  if (refund != nullptr) {
    pairs.push_back(S("refund"));
    pairs.push_back(S(refund));
  }
  return A(pairs);
}

TEST(RedisStoreReplies, SnapshotSortsGrabsBySeqAndSumsThem) {
  const Reply reply =
      A({MetaPairs("open"), A({S("8"), S("30:2:1000200:ab"), S("7"), S("20:1:1000100:")}), I(1)});
  auto parsed = ParseSnapshotReply(reply, 77, domain::FromUnixMillis(1000500));
  ASSERT_TRUE(parsed) << parsed.error().message;
  ASSERT_TRUE(parsed->has_value());
  const PacketSnapshot& snapshot = **parsed;
  EXPECT_EQ(snapshot.record.packet_id, 77);
  EXPECT_EQ(snapshot.record.status, domain::PacketStatus::kOpen);
  EXPECT_EQ(snapshot.record.spec.expires_in_s, 60);
  EXPECT_EQ(snapshot.record.spec.greeting, "hi");
  ASSERT_EQ(snapshot.record.grabs.size(), 2u);
  EXPECT_EQ(snapshot.record.grabs[0].user_id, 7);
  EXPECT_EQ(snapshot.record.grabs[0].seq, 1);
  EXPECT_EQ(snapshot.record.grabs[1].user_id, 8);
  EXPECT_EQ(snapshot.record.grabs[1].amount_cents, 30);
  EXPECT_EQ(domain::ToUnixMillis(snapshot.record.grabs[1].grabbed_at), 1000200);
  EXPECT_EQ(snapshot.remaining_cents, 50);
  EXPECT_EQ(snapshot.remaining_count, 1);
  EXPECT_FALSE(snapshot.record.refund_cents);
}

TEST(RedisStoreReplies, SnapshotStatusRules) {
  auto status_at = [](Reply meta, std::int64_t now_ms) {
    auto parsed =
        ParseSnapshotReply(A({std::move(meta), A({}), I(3)}), 1, domain::FromUnixMillis(now_ms));
    EXPECT_TRUE(parsed && parsed->has_value());
    return parsed && parsed->has_value() ? (*parsed)->record : domain::PacketRecord{};
  };
  EXPECT_EQ(status_at(MetaPairs("open"), 1060000).status, domain::PacketStatus::kExpired)
      << "an open packet past its expiry shows as expired before the sweeper runs";
  EXPECT_FALSE(status_at(MetaPairs("expired", "50"), 1060000).refund_cents)
      << "the refund is shown once durable";
  EXPECT_EQ(status_at(MetaPairs("refunded", "50"), 1060000).refund_cents, 50);

  auto absent = ParseSnapshotReply(A({A({}), A({}), I(0)}), 1, {});
  ASSERT_TRUE(absent);
  EXPECT_FALSE(absent->has_value());
  auto loading = ParseSnapshotReply(A({MetaPairs("loading"), A({}), I(0)}), 1, {});
  ASSERT_TRUE(loading);
  EXPECT_FALSE(loading->has_value());
  EXPECT_FALSE(ParseSnapshotReply(A({MetaPairs("open"), A({S("7"), S("junk")}), I(0)}), 1, {}));
  EXPECT_FALSE(ParseSnapshotReply(A({MetaPairs("open"), A({})}), 1, {}));
}

}  // namespace
}  // namespace redpacket::store::redis
