// The Redis Cluster client against in-process fake nodes on the test's io_context:
// routing, pipelining, timeouts, NOSCRIPT, WAIT and MOVED handling, connection loss, Stop, and a
// callback that destroys the client. No Redis needed; the same client against a real cluster is
// tests/redis/redis_cluster_redistest.cc.
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
#include "tests/support/io_loop.h"

namespace redpacket::net::redis {
namespace {

using namespace std::chrono_literals;

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

bool RunUntil(asio::io_context& io, const std::function<bool()>& done,
              std::chrono::milliseconds limit = 5s) {
  return testing_support::RunUntil(io, done, limit);
}
using testing_support::RunFor;

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
