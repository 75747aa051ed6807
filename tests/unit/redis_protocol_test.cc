// Redis client parts that need no Redis and no socket: CRC16 slots and hashtags, RESP encoding
// and parsing, CLUSTER SLOTS and redirect parsing, batch assembly with one WAIT, the deadline
// queue. The client itself against fake nodes: cluster_client_fake_test.cc.
#include <gtest/gtest.h>

#include <array>
#include <chrono>
#include <random>
#include <string>
#include <vector>

#include "net/redis/command.h"
#include "net/redis/endpoint.h"
#include "net/redis/protocol.h"
#include "net/redis/reply.h"
#include "net/redis/script.h"
#include "net/redis/slot.h"

namespace redpacket::net::redis {
namespace {

using namespace std::chrono_literals;

// --- hash slots ---

TEST(Crc16Test, MatchesTheClusterSpecVector) {
  EXPECT_EQ(Crc16("123456789"), 0x31C3);
  EXPECT_EQ(Crc16(""), 0);
}

TEST(KeySlotTest, MatchesRedis) {
  // Values from CLUSTER KEYSLOT on Redis 7.
  EXPECT_EQ(KeySlot("foo"), 12182);
  EXPECT_EQ(KeySlot("bar"), 5061);
  EXPECT_EQ(KeySlot("hello"), 866);
  EXPECT_EQ(KeySlot(""), 0);
}

TEST(KeySlotTest, HashTagRules) {
  EXPECT_EQ(HashTag("{user1000}.following"), "user1000");
  EXPECT_EQ(KeySlot("{user1000}.following"), KeySlot("{user1000}.followers"));
  EXPECT_EQ(KeySlot("{rp:42}:shares"), KeySlot("rp:42"));
  EXPECT_EQ(KeySlot("{rp:42}:shares"), KeySlot("{rp:42}:grabbed"));
  EXPECT_EQ(HashTag("foo{}{bar}"), "foo{}{bar}");  // empty tag: the whole key
  EXPECT_EQ(HashTag("foo{{bar}}zap"), "{bar");     // up to the first '}'
  EXPECT_EQ(HashTag("foo{bar}{zap}"), "bar");      // only the first tag
  EXPECT_EQ(HashTag("foo{bar"), "foo{bar");        // unterminated: the whole key
  EXPECT_EQ(HashTag("foo}bar{"), "foo}bar{");
}

// --- endpoints ---

TEST(EndpointTest, Parses) {
  EXPECT_EQ(ParseEndpoint("127.0.0.1:7001"), (Endpoint{"127.0.0.1", 7001}));
  EXPECT_EQ(ParseEndpoint("::1:7001"), (Endpoint{"::1", 7001}));
  EXPECT_FALSE(ParseEndpoint("127.0.0.1"));
  EXPECT_FALSE(ParseEndpoint(":7001"));
  EXPECT_FALSE(ParseEndpoint("host:0"));
  EXPECT_FALSE(ParseEndpoint("host:70000"));
  EXPECT_FALSE(ParseEndpoint("host:70x"));
  auto list = ParseEndpointList("127.0.0.1:7001, 127.0.0.1:7002");
  ASSERT_TRUE(list);
  EXPECT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[1].ToString(), "127.0.0.1:7002");
  EXPECT_FALSE(ParseEndpointList(""));
  EXPECT_FALSE(ParseEndpointList("127.0.0.1:7001,nonsense"));
}

// --- RESP ---

TEST(ProtocolTest, EncodesCommands) {
  EXPECT_EQ(EncodeCommand({"SET", "k", "v"}), "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n");
  const std::string binary("a\0\r\nb", 5);
  EXPECT_EQ(EncodeCommand({"GET", binary}), "*2\r\n$3\r\nGET\r\n$5\r\n" + binary + "\r\n");
  std::string out = "x";
  AppendCommand({"PING"}, &out);
  EXPECT_EQ(out, "x*1\r\n$4\r\nPING\r\n");
}

std::vector<Reply> ParseAll(std::string_view bytes, bool byte_by_byte) {
  ReplyReader reader;
  std::vector<Reply> replies;
  auto drain = [&] {
    Reply reply;
    ReplyReader::Status status;
    while ((status = reader.Next(&reply)) == ReplyReader::Status::kReply) replies.push_back(reply);
    EXPECT_EQ(status, ReplyReader::Status::kIncomplete) << reader.error();
  };
  if (byte_by_byte) {
    for (const char c : bytes) {
      reader.Feed(std::string_view(&c, 1));
      drain();
    }
  } else {
    reader.Feed(bytes);
    drain();
  }
  return replies;
}

TEST(ProtocolTest, ConvertsEveryReplyType) {
  const std::string bytes =
      "+OK\r\n-ERR bad\r\n:42\r\n$5\r\nhe\r\no\r\n$-1\r\n*-1\r\n"
      "*3\r\n:1\r\n*2\r\n$1\r\na\r\n$0\r\n\r\n$-1\r\n";
  for (const bool byte_by_byte : {false, true}) {
    const std::vector<Reply> replies = ParseAll(bytes, byte_by_byte);
    ASSERT_EQ(replies.size(), 7u);
    EXPECT_TRUE(replies[0].IsStatus());
    EXPECT_EQ(replies[0].status(), "OK");
    EXPECT_TRUE(replies[1].IsError());
    EXPECT_EQ(replies[1].error(), "ERR bad");
    EXPECT_EQ(replies[2].integer(), 42);
    EXPECT_EQ(replies[3].string(), "he\r\no");
    EXPECT_TRUE(replies[4].IsNil());
    EXPECT_TRUE(replies[5].IsNil());
    EXPECT_EQ(replies[6],
              Reply(Reply::Array{Reply(std::int64_t{1}),
                                 Reply(Reply::Array{Reply(std::string("a")), Reply(std::string())}),
                                 Reply()}));
    EXPECT_EQ(replies[6].DebugString(), "[(integer) 1, [\"a\", \"\"], (nil)]");
  }
}

TEST(ProtocolTest, ReportsProtocolErrors) {
  ReplyReader reader;
  reader.Feed("?what\r\n");
  Reply reply;
  EXPECT_EQ(reader.Next(&reply), ReplyReader::Status::kProtocolError);
  EXPECT_FALSE(reader.error().empty());
  reader.Reset();
  reader.Feed(":1\r\n");
  EXPECT_EQ(reader.Next(&reply), ReplyReader::Status::kReply);
  EXPECT_EQ(reply.integer(), 1);
}

// Found by fuzz/redis_reply_fuzz.cc: hiredis allocates an array's element pointers on reading
// its header, so 14 bytes asked for 16 GiB. Such a count is a protocol error now.
TEST(ProtocolTest, RefusesAnArrayTooLargeToAllocate) {
  ReplyReader reader;
  Reply reply;
  reader.Feed("*2147483647\r\n");
  EXPECT_EQ(reader.Next(&reply), ReplyReader::Status::kProtocolError);
  EXPECT_NE(reader.error().find("2147483647 elements"), std::string::npos) << reader.error();
  reader.Reset();
  EXPECT_EQ(reader.error(), "");
  reader.Feed("*2\r\n*16777217\r\n");  // nested, one over the limit
  EXPECT_EQ(reader.Next(&reply), ReplyReader::Status::kProtocolError);
  reader.Reset();
  reader.Feed("*100000\r\n:1\r\n");  // large but allowed: waits for the rest
  EXPECT_EQ(reader.Next(&reply), ReplyReader::Status::kIncomplete);
  reader.Reset();
  reader.Feed("*2\r\n:1\r\n:2\r\n");
  ASSERT_EQ(reader.Next(&reply), ReplyReader::Status::kReply);
  EXPECT_EQ(reply.array().size(), 2u);
}

TEST(ProtocolTest, RewritesEvalShaAsEval) {
  const Script script("return KEYS[1]");
  const std::string evalsha = EncodeCommand({"EVALSHA", script.sha1(), "1", "{rp:1}:meta", "7"});
  const auto eval = RewriteEvalShaAsEval(evalsha, script.source());
  ASSERT_TRUE(eval);
  EXPECT_EQ(*eval, EncodeCommand({"EVAL", script.source(), "1", "{rp:1}:meta", "7"}));
  EXPECT_FALSE(RewriteEvalShaAsEval(EncodeCommand({"GET", "k"}), "x"));
  EXPECT_FALSE(RewriteEvalShaAsEval("", "x"));
}

TEST(ScriptTest, Sha1MatchesRedis) {
  // `redis-cli SCRIPT LOAD "return 1"` answers this.
  EXPECT_EQ(Script("return 1").sha1(), "e0e1f9fabfc9d4800c877a703b823ac0578ff8db");
  EXPECT_EQ(Sha1Hex(""), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
}

// --- errors and redirects ---

TEST(RedirectTest, ParsesMovedAndAsk) {
  auto moved = ParseRedirect("MOVED 3999 127.0.0.1:6381");
  ASSERT_TRUE(moved);
  EXPECT_EQ(moved->kind, Redirect::Kind::kMoved);
  EXPECT_EQ(moved->slot, 3999);
  EXPECT_EQ(moved->endpoint, (Endpoint{"127.0.0.1", 6381}));

  auto ask = ParseRedirect("ASK 16383 10.0.0.2:7002");
  ASSERT_TRUE(ask);
  EXPECT_EQ(ask->kind, Redirect::Kind::kAsk);
  EXPECT_EQ(ask->slot, 16383);
  EXPECT_EQ(ask->endpoint, (Endpoint{"10.0.0.2", 7002}));

  auto same_host = ParseRedirect("MOVED 1 :7003");  // Redis 7, unknown endpoint
  ASSERT_TRUE(same_host);
  EXPECT_EQ(same_host->endpoint, (Endpoint{"", 7003}));

  EXPECT_FALSE(ParseRedirect("ERR unknown command"));
  EXPECT_FALSE(ParseRedirect("MOVED"));
  EXPECT_FALSE(ParseRedirect("MOVED 3999"));
  EXPECT_FALSE(ParseRedirect("MOVED x 127.0.0.1:1"));
  EXPECT_FALSE(ParseRedirect("MOVED 16384 127.0.0.1:1"));
  EXPECT_FALSE(ParseRedirect("MOVED 1 127.0.0.1"));
  EXPECT_FALSE(ParseRedirect("MOVEDX 1 127.0.0.1:1"));
}

TEST(ErrorTest, ClassifiesServerErrors) {
  EXPECT_EQ(ClassifyServerError("TRYAGAIN Multiple keys request during rehashing of slot"),
            ErrorKind::kTryAgain);
  EXPECT_EQ(ClassifyServerError("CLUSTERDOWN The cluster is down"), ErrorKind::kClusterDown);
  EXPECT_EQ(ClassifyServerError("READONLY You can't write against a read only replica."),
            ErrorKind::kClusterDown);
  EXPECT_EQ(ClassifyServerError("LOADING Redis is loading the dataset in memory"),
            ErrorKind::kClusterDown);
  EXPECT_EQ(ClassifyServerError("CROSSSLOT Keys in request don't hash to the same slot"),
            ErrorKind::kCrossSlot);
  EXPECT_EQ(ClassifyServerError("WRONGTYPE Operation against a key holding the wrong kind"),
            ErrorKind::kServer);
  EXPECT_EQ(ClassifyServerError("ERR Error running script"), ErrorKind::kServer);
  EXPECT_EQ(ClassifyServerError("CLUSTERDOWNX"), ErrorKind::kServer);
}

TEST(ErrorTest, SortsRetryable) {
  for (const ErrorKind kind : {ErrorKind::kConnection, ErrorKind::kTimeout, ErrorKind::kTryAgain,
                               ErrorKind::kClusterDown, ErrorKind::kNotReplicated}) {
    EXPECT_TRUE(IsRetryable(kind)) << ErrorKindName(kind);
  }
  for (const ErrorKind kind :
       {ErrorKind::kServer, ErrorKind::kCrossSlot, ErrorKind::kProtocol, ErrorKind::kStopped}) {
    EXPECT_FALSE(IsRetryable(kind)) << ErrorKindName(kind);
  }
  EXPECT_EQ((Error{ErrorKind::kTimeout, "late"}).ToString(), "timeout: late");
}

// --- CLUSTER SLOTS ---

Reply Node(std::string host, std::int64_t port, std::string id) {
  return Reply(Reply::Array{Reply(std::move(host)), Reply(port), Reply(std::move(id))});
}

Reply Range(std::int64_t first, std::int64_t last, std::vector<Reply> nodes) {
  Reply::Array fields{Reply(first), Reply(last)};
  for (Reply& node : nodes) fields.push_back(std::move(node));
  return Reply(std::move(fields));
}

TEST(ClusterSlotsTest, ParsesMastersAndReplicas) {
  const Reply reply(Reply::Array{
      Range(0, 5460, {Node("127.0.0.1", 7001, "a"), Node("127.0.0.1", 7005, "e")}),
      Range(5461, 10922, {Node("", 7002, "b")}),  // empty host: the node that answered
      Range(10923, 16383, {Node("127.0.0.1", 7003, "c"), Node("?", 7004, "d")}),
  });
  const auto ranges = ParseClusterSlots(reply, "10.1.1.1");
  ASSERT_TRUE(ranges);
  ASSERT_EQ(ranges->size(), 3u);
  EXPECT_EQ((*ranges)[0].first, 0);
  EXPECT_EQ((*ranges)[0].last, 5460);
  EXPECT_EQ((*ranges)[0].master, (Endpoint{"127.0.0.1", 7001}));
  ASSERT_EQ((*ranges)[0].replicas.size(), 1u);
  EXPECT_EQ((*ranges)[0].replicas[0], (Endpoint{"127.0.0.1", 7005}));
  EXPECT_EQ((*ranges)[1].master, (Endpoint{"10.1.1.1", 7002}));
  EXPECT_TRUE((*ranges)[1].replicas.empty());
  EXPECT_EQ((*ranges)[2].replicas[0], (Endpoint{"10.1.1.1", 7004}));
}

TEST(ClusterSlotsTest, RejectsMalformedReplies) {
  EXPECT_FALSE(ParseClusterSlots(Reply(std::string("x")), "h"));
  EXPECT_FALSE(ParseClusterSlots(Reply(Reply::Array{Range(0, 10, {})}), "h"));  // no master
  EXPECT_FALSE(ParseClusterSlots(Reply(Reply::Array{Range(5, 1, {Node("h", 1, "a")})}), "h"));
  EXPECT_FALSE(ParseClusterSlots(Reply(Reply::Array{Range(0, 16384, {Node("h", 1, "a")})}), "h"));
  EXPECT_FALSE(ParseClusterSlots(Reply(Reply::Array{Range(0, 1, {Node("h", 0, "a")})}), "h"));
  EXPECT_FALSE(ParseClusterSlots(
      Reply(Reply::Array{Range(0, 1, {Reply(Reply::Array{Reply(std::int64_t{1})})})}), "h"));
  const auto empty = ParseClusterSlots(Reply(Reply::Array{}), "h");
  ASSERT_TRUE(empty);
  EXPECT_TRUE(empty->empty());
}

// --- batch assembly ---

CommandPtr MakeCommand(std::vector<std::string_view> argv, int min_replicas = 0,
                       std::chrono::milliseconds wait_timeout = 0ms) {
  auto command = std::make_shared<Command>();
  command->payload = EncodeCommand(std::span<const std::string_view>(argv));
  command->min_replicas = min_replicas;
  command->wait_timeout = wait_timeout;
  command->attempt = 1;
  return command;
}

std::size_t Count(const std::string& haystack, std::string_view needle) {
  std::size_t count = 0;
  for (auto at = haystack.find(needle); at != std::string::npos;
       at = haystack.find(needle, at + 1)) {
    ++count;
  }
  return count;
}

TEST(AssembleBatchTest, OneWaitAfterTheLastCommandThatNeedsIt) {
  const CommandPtr grab1 = MakeCommand({"EVALSHA", "sha", "1", "{rp:1}:m"}, 1, 50ms);
  const CommandPtr plain = MakeCommand({"GET", "a"});
  const CommandPtr grab2 = MakeCommand({"EVALSHA", "sha", "1", "{rp:2}:m"}, 2, 100ms);
  const CommandPtr timed_out = MakeCommand({"GET", "b"}, 1, 500ms);
  timed_out->done = true;
  const CommandPtr asked = MakeCommand({"EVALSHA", "sha", "1", "{rp:3}:m"}, 1, 20ms);
  const CommandPtr last = MakeCommand({"GET", "c"});
  const std::vector<QueuedCommand> queued{{grab1, false},     {plain, false}, {grab2, false},
                                          {timed_out, false}, {asked, true},  {last, false}};

  std::string out;
  std::deque<ExpectedReply> expected;
  EXPECT_EQ(AssembleBatch(queued, &out, &expected), 5u);

  EXPECT_EQ(out, grab1->payload + plain->payload + grab2->payload + EncodeCommand({"ASKING"}) +
                     asked->payload + last->payload + EncodeCommand({"WAIT", "2", "100"}));
  EXPECT_EQ(Count(out, "WAIT"), 1u);
  using Role = ExpectedReply::Role;
  ASSERT_EQ(expected.size(), 7u);
  const std::vector<Role> roles{Role::kCommand, Role::kCommand, Role::kCommand, Role::kAsking,
                                Role::kCommand, Role::kCommand, Role::kWait};
  for (std::size_t i = 0; i < roles.size(); ++i) EXPECT_EQ(expected[i].role, roles[i]) << i;
  EXPECT_EQ(expected[0].command, grab1);
  EXPECT_EQ(expected[4].command, asked);
  const WaitGroup& group = *expected.back().wait_group;
  EXPECT_EQ(group.min_replicas, 2);
  ASSERT_EQ(group.members.size(), 3u);
  EXPECT_EQ(group.members[0].command, grab1);
  EXPECT_EQ(group.members[1].command, grab2);
  EXPECT_EQ(group.members[2].command, asked);
  EXPECT_EQ(group.members[2].attempt, 1u);
}

TEST(AssembleBatchTest, NoWaitWithoutDurableCommands) {
  std::string out;
  std::deque<ExpectedReply> expected;
  AssembleBatch({{MakeCommand({"GET", "a"}), false}, {MakeCommand({"INCR", "b"}), false}}, &out,
                &expected);
  EXPECT_EQ(Count(out, "WAIT"), 0u);
  EXPECT_EQ(expected.size(), 2u);
}

TEST(AssembleBatchTest, WaitTimeoutIsNeverZero) {
  // WAIT n 0 blocks forever.
  std::string out;
  std::deque<ExpectedReply> expected;
  AssembleBatch({{MakeCommand({"SET", "a", "1"}, 1, 0ms), false}}, &out, &expected);
  EXPECT_TRUE(out.ends_with(EncodeCommand({"WAIT", "1", "1"})));
}

// --- deadline queue ---

TEST(DeadlineQueueTest, PopsInDeadlineOrderAndErasesAnywhere) {
  std::mt19937 random(7);
  const Clock::time_point base = Clock::now();
  DeadlineQueue queue;
  std::vector<CommandPtr> commands;
  for (int i = 0; i < 500; ++i) {
    auto command = std::make_shared<Command>();
    command->deadline = base + std::chrono::milliseconds(random() % 100);
    queue.Push(command);
    commands.push_back(command);
  }
  std::multiset<Clock::time_point> expected;
  for (std::size_t i = 0; i < commands.size(); ++i) {
    if (i % 3 == 0) {
      queue.Erase(*commands[i]);
      queue.Erase(*commands[i]);  // twice is harmless
      EXPECT_EQ(commands[i]->deadline_index, Command::kNotQueued);
    } else {
      expected.insert(commands[i]->deadline);
    }
  }
  ASSERT_EQ(queue.size(), expected.size());
  for (const Clock::time_point deadline : expected) {
    ASSERT_FALSE(queue.empty());
    EXPECT_EQ(queue.Top()->deadline, deadline);
    const CommandPtr popped = queue.Pop();
    EXPECT_EQ(popped->deadline, deadline);
    EXPECT_EQ(popped->deadline_index, Command::kNotQueued);
  }
  EXPECT_TRUE(queue.empty());
}

}  // namespace
}  // namespace redpacket::net::redis
