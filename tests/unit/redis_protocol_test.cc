// Redis client parts that need no Redis: CRC16 slots and hashtags, RESP encoding and parsing,
// CLUSTER SLOTS and redirect parsing, batch assembly with one WAIT; then the client's routing,
// pipelining, timeouts, NOSCRIPT, WAIT and MOVED handling against in-process fake nodes.
#include <gtest/gtest.h>

#include <array>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "net/redis/cluster_client.h"
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

// --- the client against in-process fake nodes ---

namespace asio = boost::asio;
using asio::ip::tcp;

// A Redis node that answers through a handler; nullopt means "never answer". Runs on the test's
// io_context; writes are synchronous, which is fine on loopback with small replies.
class FakeNode {
 public:
  using Handler = std::function<std::optional<std::string>(const std::vector<std::string>&)>;

  FakeNode(asio::io_context& io, Handler handler)
      : acceptor_(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)),
        handler_(std::move(handler)) {
    Accept();
  }

  Endpoint endpoint() const { return {"127.0.0.1", acceptor_.local_endpoint().port()}; }
  const std::vector<std::vector<std::string>>& received() const { return received_; }
  std::size_t Received(std::string_view name) const {
    std::size_t count = 0;
    for (const auto& argv : received_) count += !argv.empty() && argv[0] == name;
    return count;
  }
  // Drops every connection, as a crashed node would.
  void DropConnections() {
    for (auto& session : sessions_) session->socket.close();
    sessions_.clear();
  }

 private:
  struct Session {
    explicit Session(tcp::socket s) : socket(std::move(s)) {}
    tcp::socket socket;
    ReplyReader reader;
    std::array<char, 4096> buffer{};
  };

  void Accept() {
    acceptor_.async_accept([this](const boost::system::error_code& error, tcp::socket socket) {
      if (error) return;
      socket.set_option(tcp::no_delay(true));  // as Redis does; Nagle would add 40 ms stalls
      auto session = std::make_shared<Session>(std::move(socket));
      sessions_.push_back(session);
      Read(session);
      Accept();
    });
  }

  void Read(const std::shared_ptr<Session>& session) {
    session->socket.async_read_some(
        asio::buffer(session->buffer),
        [this, session](const boost::system::error_code& error, std::size_t size) {
          if (error) return;
          session->reader.Feed(std::string_view(session->buffer.data(), size));
          Reply request;
          std::string out;
          while (session->reader.Next(&request) == ReplyReader::Status::kReply) {
            std::vector<std::string> argv;
            for (const Reply& arg : request.array()) argv.push_back(arg.string());
            received_.push_back(argv);
            if (auto reply = handler_(argv)) out += *reply;
          }
          if (!out.empty()) {
            boost::system::error_code ignored;
            asio::write(session->socket, asio::buffer(out), ignored);
          }
          Read(session);
        });
  }

  tcp::acceptor acceptor_;
  Handler handler_;
  std::vector<std::shared_ptr<Session>> sessions_;
  std::vector<std::vector<std::string>> received_;
};

std::string SlotsReply(const std::vector<std::tuple<int, int, std::uint16_t>>& ranges) {
  std::string out = "*" + std::to_string(ranges.size()) + "\r\n";
  for (const auto& [first, last, port] : ranges) {
    out += "*3\r\n:" + std::to_string(first) + "\r\n:" + std::to_string(last) +
           "\r\n*2\r\n$9\r\n127.0.0.1\r\n:" + std::to_string(port) + "\r\n";
  }
  return out;
}

std::string Bulk(std::string_view value) {
  return "$" + std::to_string(value.size()) + "\r\n" + std::string(value) + "\r\n";
}

// Runs the io_context until `done` holds; false after `limit`.
bool RunUntil(asio::io_context& io, const std::function<bool()>& done,
              std::chrono::milliseconds limit = 5s) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > end) return false;
    io.restart();
    io.run_one_for(10ms);
  }
  return true;
}

void RunFor(asio::io_context& io, std::chrono::milliseconds duration) {
  io.restart();
  io.run_for(duration);
}

class ClusterClientFakeTest : public ::testing::Test {
 protected:
  // One fake node owning every slot; `handler` answers everything but CLUSTER SLOTS.
  void StartSingleNode(const FakeNode::Handler& handler) {
    node_ = std::make_unique<FakeNode>(
        io_, [this, handler](const std::vector<std::string>& argv) -> std::optional<std::string> {
          if (argv[0] == "CLUSTER") {
            return slots_reply_ ? slots_reply_() : SlotsReply({{0, 16383, node_->endpoint().port}});
          }
          return handler(argv);
        });
    ClusterClientOptions options;
    options.seeds = {node_->endpoint()};
    options.command_timeout = 1s;
    options.refresh_interval = 20ms;
    client_ = std::make_unique<ClusterClient>(io_, options);
  }

  Result Run(const std::function<void(Callback)>& issue) {
    std::optional<Result> result;
    issue([&](Result r) { result.emplace(std::move(r)); });
    EXPECT_TRUE(RunUntil(io_, [&] { return result.has_value(); }));
    return result ? *result : Result(Error{ErrorKind::kTimeout, "test gave up"});
  }

  asio::io_context io_;
  std::function<std::string()> slots_reply_;  // CLUSTER SLOTS; default: node_ has every slot
  std::unique_ptr<FakeNode> node_;
  std::unique_ptr<ClusterClient> client_;
};

TEST_F(ClusterClientFakeTest, PipelinesConcurrentCommandsAndMatchesRepliesInOrder) {
  StartSingleNode([](const std::vector<std::string>& argv) -> std::optional<std::string> {
    return Bulk("value-of-" + argv[1]);
  });
  std::optional<Error> connected = Error{};
  client_->Connect([&](std::optional<Error> error) { connected = std::move(error); });
  ASSERT_TRUE(RunUntil(io_, [&] { return !connected.has_value(); }));

  constexpr int kCommands = 500;
  std::map<int, std::string> answers;
  for (int i = 0; i < kCommands; ++i) {
    const std::string key = "key" + std::to_string(i);
    client_->Execute(key, {"GET", key}, [&answers, i](const Result& result) {
      answers[i] = result.ok() ? result.reply().string() : result.error().ToString();
    });
  }
  ASSERT_TRUE(RunUntil(io_, [&] { return answers.size() == kCommands; }));
  for (int i = 0; i < kCommands; ++i) EXPECT_EQ(answers[i], "value-of-key" + std::to_string(i));
  const ClientCounters counters = client_->counters();
  EXPECT_EQ(counters.commands_written, kCommands + 1u);  // + CLUSTER SLOTS
  EXPECT_LE(counters.writes, 3u) << "500 commands issued together should leave in one write";
}

TEST_F(ClusterClientFakeTest, TimesOutWhenTheNodeNeverAnswers) {
  StartSingleNode([](const std::vector<std::string>&) { return std::nullopt; });
  const auto start = std::chrono::steady_clock::now();
  const Result result = Run([&](Callback done) {
    client_->Execute("k", {"GET", "k"}, std::move(done), CommandOptions{.timeout = 100ms});
  });
  const auto elapsed = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().kind, ErrorKind::kTimeout);
  EXPECT_TRUE(result.error().retryable());
  EXPECT_GE(elapsed, 100ms);
  EXPECT_LT(elapsed, 1s);
  EXPECT_EQ(client_->counters().timeouts, 1u);
}

TEST_F(ClusterClientFakeTest, FallsBackToEvalOnNoscript) {
  StartSingleNode([](const std::vector<std::string>& argv) -> std::optional<std::string> {
    if (argv[0] == "EVALSHA") return "-NOSCRIPT No matching script. Please use EVAL.\r\n";
    if (argv[0] == "EVAL") return ":" + std::to_string(argv.size()) + "\r\n";
    return "-ERR unexpected\r\n";
  });
  const Script script("return 1");
  const std::vector<std::string_view> keys{"{p}:a", "{p}:b"};
  const std::vector<std::string_view> args{"x"};
  const Result result =
      Run([&](Callback done) { client_->Eval(script, keys, args, std::move(done)); });
  ASSERT_TRUE(result.ok()) << result.error().ToString();
  EXPECT_EQ(result.reply().integer(), 6);  // EVAL source 2 key key arg
  EXPECT_EQ(node_->Received("EVALSHA"), 1u);
  EXPECT_EQ(node_->Received("EVAL"), 1u);
  EXPECT_EQ(client_->counters().noscript_fallbacks, 1u);
}

TEST_F(ClusterClientFakeTest, RejectsScriptKeysInDifferentSlots) {
  StartSingleNode([](const std::vector<std::string>&) { return ":1\r\n"; });
  const Script script("return 1");
  const std::vector<std::string_view> keys{"{a}:x", "{b}:x"};
  const Result result =
      Run([&](Callback done) { client_->Eval(script, keys, {}, std::move(done)); });
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().kind, ErrorKind::kCrossSlot);
}

TEST_F(ClusterClientFakeTest, OneWaitCoversAWholeBatch) {
  int wait_answer = 1;
  StartSingleNode([&](const std::vector<std::string>& argv) -> std::optional<std::string> {
    if (argv[0] == "WAIT") return ":" + std::to_string(wait_answer) + "\r\n";
    return ":7\r\n";
  });
  const Script script("return 7");
  constexpr int kGrabs = 200;
  int ok = 0;
  int not_replicated = 0;
  auto issue_batch = [&] {
    for (int i = 0; i < kGrabs; ++i) {
      const std::string key = "{rp:" + std::to_string(i) + "}:meta";
      const std::vector<std::string_view> keys{key};
      client_->EvalAndWait(script, keys, {}, 1, 100ms, [&](const Result& result) {
        if (result.ok()) {
          EXPECT_EQ(result.reply().integer(), 7);
          ++ok;
        } else {
          EXPECT_EQ(result.error().kind, ErrorKind::kNotReplicated) << result.error().ToString();
          ++not_replicated;
        }
      });
    }
  };
  issue_batch();
  ASSERT_TRUE(RunUntil(io_, [&] { return ok == kGrabs; }));
  const ClientCounters counters = client_->counters();
  EXPECT_EQ(node_->Received("WAIT"), counters.waits_written);
  EXPECT_LE(counters.waits_written, 3u) << "one WAIT per batch, not one per script";

  wait_answer = 0;  // the replica fell behind
  issue_batch();
  ASSERT_TRUE(RunUntil(io_, [&] { return not_replicated == kGrabs; }));
  EXPECT_EQ(client_->counters().not_replicated, static_cast<std::uint64_t>(kGrabs));
}

TEST_F(ClusterClientFakeTest, FollowsMovedAndUpdatesTheSlotOwner) {
  FakeNode new_owner(io_, [](const std::vector<std::string>&) { return Bulk("from-new-owner"); });
  const int slot = KeySlot("moving");
  // The cluster says: node_ has every slot but `slot`, which new_owner has.
  slots_reply_ = [&] {
    return SlotsReply({{0, slot - 1, node_->endpoint().port},
                       {slot, slot, new_owner.endpoint().port},
                       {slot + 1, 16383, node_->endpoint().port}});
  };
  StartSingleNode([&](const std::vector<std::string>&) -> std::optional<std::string> {
    return "-MOVED " + std::to_string(slot) + " " + new_owner.endpoint().ToString() + "\r\n";
  });
  std::optional<Error> connected = Error{};
  client_->Connect([&](std::optional<Error> error) { connected = std::move(error); });
  ASSERT_TRUE(RunUntil(io_, [&] { return !connected.has_value(); }));
  client_->OverrideSlotOwnerForTesting(slot, node_->endpoint());  // a stale map

  const Result result = Run([&](Callback done) {
    client_->Execute("moving", {"GET", "moving"}, std::move(done));
  });
  ASSERT_TRUE(result.ok()) << result.error().ToString();
  EXPECT_EQ(result.reply().string(), "from-new-owner");
  EXPECT_EQ(client_->counters().moved, 1u);
  EXPECT_EQ(client_->SlotOwner(slot), new_owner.endpoint());
  // The refresh the MOVED asked for agrees.
  ASSERT_TRUE(RunUntil(io_, [&] { return client_->counters().slot_map_refreshes >= 2; }));
  EXPECT_EQ(client_->SlotOwner(slot), new_owner.endpoint());
}

TEST_F(ClusterClientFakeTest, ConnectionLossFailsInFlightCommandsUnlessIdempotent) {
  bool answer = false;
  StartSingleNode([&](const std::vector<std::string>&) -> std::optional<std::string> {
    if (answer) return ":1\r\n";
    return std::nullopt;
  });
  std::optional<Result> plain;
  std::optional<Result> idempotent;
  client_->Execute("k", {"INCR", "k"}, [&](Result r) { plain.emplace(std::move(r)); });
  client_->Execute(
      "k", {"GET", "k"}, [&](Result r) { idempotent.emplace(std::move(r)); },
      CommandOptions{.idempotent = true});
  ASSERT_TRUE(RunUntil(io_, [&] { return node_->Received("GET") == 1; }));
  answer = true;
  node_->DropConnections();
  ASSERT_TRUE(RunUntil(io_, [&] { return plain && idempotent; }));
  ASSERT_FALSE(plain->ok());
  EXPECT_EQ(plain->error().kind, ErrorKind::kConnection);
  ASSERT_TRUE(idempotent->ok()) << idempotent->error().ToString();
  EXPECT_EQ(node_->Received("GET"), 2u);  // sent again on a new connection
}

TEST_F(ClusterClientFakeTest, ConnectReportsAnUnreachableCluster) {
  ClusterClientOptions options;
  {
    tcp::acceptor closed(io_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    options.seeds = {{"127.0.0.1", closed.local_endpoint().port()}};
  }  // nothing listens there any more
  ClusterClient client(io_, options);
  std::optional<std::optional<Error>> connected;
  client.Connect([&](std::optional<Error> error) { connected.emplace(std::move(error)); });
  ASSERT_TRUE(RunUntil(io_, [&] { return connected.has_value(); }));
  ASSERT_TRUE(connected->has_value());
  EXPECT_EQ((*connected)->kind, ErrorKind::kConnection);
}

TEST_F(ClusterClientFakeTest, StopCompletesOutstandingCommands) {
  StartSingleNode([](const std::vector<std::string>&) { return std::nullopt; });
  std::optional<Result> result;
  client_->Execute("k", {"GET", "k"}, [&](Result r) { result.emplace(std::move(r)); });
  ASSERT_TRUE(RunUntil(io_, [&] { return node_->Received("GET") == 1; }));
  client_->Stop();
  ASSERT_TRUE(result);
  EXPECT_EQ(result->error().kind, ErrorKind::kStopped);
}

TEST_F(ClusterClientFakeTest, ACallbackMayDestroyTheClient) {
  StartSingleNode([](const std::vector<std::string>& argv) -> std::optional<std::string> {
    if (argv[1] == "first") return Bulk("1");
    return std::nullopt;  // the second never answers
  });
  std::optional<Result> second;
  bool first_done = false;
  client_->Execute("first", {"GET", "first"}, [&](const Result&) {
    first_done = true;
    client_.reset();  // from inside a reply handler
  });
  client_->Execute("second", {"GET", "second"}, [&](Result r) { second.emplace(std::move(r)); });
  ASSERT_TRUE(RunUntil(io_, [&] { return first_done; }));
  ASSERT_TRUE(second);
  EXPECT_EQ(second->error().kind, ErrorKind::kStopped);
  RunFor(io_, 50ms);  // handlers still queued must find nothing to do
}

TEST(ClusterClientTest, NeedsASeed) {
  asio::io_context io;
  EXPECT_THROW(ClusterClient(io, ClusterClientOptions{}), std::invalid_argument);
}

}  // namespace
}  // namespace redpacket::net::redis
