// The connection layer over raw sockets: pipelined requests answered in order (in one write, split
// into tiny writes, and beyond the per-connection in-flight limit), keep-alive, idle timeout,
// Connection: close, and a malformed request line.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/buffer.hpp>
#include <boost/asio/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <set>

#include "harness.h"

namespace redpacket::e2e {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
using Clock = std::chrono::steady_clock;
using HttpResponse = beast::http::response<beast::http::string_body>;

constexpr milliseconds kIdleTimeout(500);
constexpr milliseconds kReadTimeout(5000);

// A blocking TCP connection whose every read is bounded by kReadTimeout (poll before recv), so a
// server that never answers fails the test instead of hanging it. A Beast SyncReadStream.
class RawConnection {
 public:
  explicit RawConnection(std::uint16_t port) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd_ < 0 || connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
      throw std::runtime_error("cannot connect to port " + std::to_string(port));
    }
    const int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  ~RawConnection() { close(fd_); }
  RawConnection(const RawConnection&) = delete;
  RawConnection& operator=(const RawConnection&) = delete;

  void Send(std::string_view bytes) {
    while (!bytes.empty()) {
      const ssize_t n = send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n <= 0) throw std::runtime_error("send failed: " + std::system_category().message(errno));
      bytes.remove_prefix(static_cast<std::size_t>(n));
    }
  }

  // The next response on the connection; throws on timeout, close or a malformed response.
  HttpResponse Read() {
    beast::http::response_parser<beast::http::string_body> parser;
    parser.body_limit(1 << 20);
    beast::error_code error;
    beast::http::read(*this, buffer_, parser, error);
    if (error) throw std::runtime_error("reading a response: " + error.message());
    return parser.release();
  }

  // Waits for the server to close the connection (EOF or reset); false if it sent data instead
  // or stayed open for `timeout`.
  bool WaitForClose(milliseconds timeout) {
    if (buffer_.size() > 0) return false;
    char byte;
    pollfd entry{fd_, POLLIN, 0};
    if (poll(&entry, 1, static_cast<int>(timeout.count())) <= 0) return false;
    const ssize_t n = recv(fd_, &byte, 1, 0);
    return n == 0 || (n < 0 && errno == ECONNRESET);
  }

  // SyncReadStream, for beast::http::read.
  template <class MutableBuffers>
  std::size_t read_some(const MutableBuffers& buffers, beast::error_code& error) {
    error = {};
    const asio::mutable_buffer buffer = *asio::buffer_sequence_begin(buffers);
    pollfd entry{fd_, POLLIN, 0};
    if (poll(&entry, 1, static_cast<int>(kReadTimeout.count())) <= 0) {
      error = asio::error::timed_out;
      return 0;
    }
    const ssize_t n = recv(fd_, buffer.data(), buffer.size(), 0);
    if (n == 0) error = asio::error::eof;
    if (n < 0) error = beast::error_code(errno, boost::system::system_category());
    return n > 0 ? static_cast<std::size_t>(n) : 0;
  }
  template <class MutableBuffers>
  std::size_t read_some(const MutableBuffers& buffers) {
    beast::error_code error;
    const std::size_t n = read_some(buffers, error);
    if (error) throw boost::system::system_error(error);
    return n;
  }

 private:
  int fd_ = -1;
  beast::flat_buffer buffer_;
};

std::string GrabRequest(const std::string& packet, std::int64_t user) {
  return "POST /v1/packets/" + packet +
         "/grab HTTP/1.1\r\nHost: e2e\r\nX-User-Id: " + std::to_string(user) +
         "\r\nContent-Length: 0\r\n\r\n";
}
constexpr std::string_view kHealthRequest = "GET /healthz HTTP/1.1\r\nHost: e2e\r\n\r\n";

json::object JsonOf(const HttpResponse& response) {
  return json::parse(response.body()).as_object();
}

class ConnectionE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    server_.Start();
    ApiClient api(server_);
    const std::int64_t sender = api.CreateFundedUser("sender", 20000);
    packet_ = api.CreatePacket(sender, R"({"total_cents":20000,"count":100,"kind":"lucky"})");
  }
  void TearDown() override {
    if (server_.running()) {
      EXPECT_EQ(server_.Stop(), 0);
    }
  }

  // `count` requests, every fifth a GET /healthz and the others grabs by users first_user + i.
  std::string Pipeline(int count, std::int64_t first_user) const {
    std::string wire;
    for (int i = 0; i < count; ++i)
      wire += i % 5 == 4 ? std::string(kHealthRequest) : GrabRequest(packet_, first_user + i);
    return wire;
  }

  // Reads the answers of Pipeline(count, first_user) and checks they come in request order.
  void ExpectInOrder(RawConnection& connection, int count, std::int64_t first_user) {
    std::set<std::int64_t> seqs;
    for (int i = 0; i < count; ++i) {
      SCOPED_TRACE("response " + std::to_string(i));
      const HttpResponse response = connection.Read();
      ASSERT_EQ(response.result_int(), 200u) << response.body();
      const json::object body = JsonOf(response);
      if (i % 5 == 4) {
        EXPECT_EQ(body.at("status").as_string(), "ok") << response.body();
        continue;
      }
      EXPECT_EQ(body.at("user_id").as_int64(), first_user + i) << response.body();
      EXPECT_TRUE(seqs.insert(body.at("seq").as_int64()).second) << response.body();
    }
  }

  ServerProcess server_{{"--idle-timeout-ms", std::to_string(kIdleTimeout.count())}};
  std::string packet_;
};

TEST_F(ConnectionE2E, FiftyPipelinedRequestsInOneWriteAreAnsweredInOrder) {
  RawConnection connection(server_.port());
  connection.Send(Pipeline(50, 2000));
  ExpectInOrder(connection, 50, 2000);
  // Still open: keep-alive after the pipeline.
  connection.Send("GET / HTTP/1.1\r\nHost: e2e\r\n\r\n");
  const HttpResponse root = connection.Read();
  EXPECT_EQ(root.result_int(), 200u);
  EXPECT_EQ(JsonOf(root).at("message").as_string(), "Red Packet System is running!");
}

TEST_F(ConnectionE2E, PipelinedRequestsSplitIntoTinyWritesAreAnsweredInOrder) {
  RawConnection connection(server_.port());
  const std::string wire = Pipeline(50, 3000);
  for (std::size_t offset = 0; offset < wire.size(); offset += 7) {
    connection.Send(std::string_view(wire).substr(offset, 7));
  }
  ExpectInOrder(connection, 50, 3000);
}

TEST_F(ConnectionE2E, MorePipelinedRequestsThanTheInFlightLimitAreAllAnswered) {
  RawConnection connection(server_.port());
  std::string wire;
  for (int i = 0; i < 300; ++i) wire += kHealthRequest;
  connection.Send(wire);
  for (int i = 0; i < 300; ++i) {
    const HttpResponse response = connection.Read();
    ASSERT_EQ(response.result_int(), 200u) << "response " << i;
  }
}

TEST_F(ConnectionE2E, IdleConnectionsAreClosedAfterTheIdleTimeout) {
  // After a request: closed once idle for the timeout, not before.
  RawConnection used(server_.port());
  used.Send(kHealthRequest);
  EXPECT_EQ(used.Read().result_int(), 200u);
  const auto answered = Clock::now();
  EXPECT_TRUE(used.WaitForClose(milliseconds(5000))) << "an idle connection stayed open";
  EXPECT_GE(Clock::now() - answered, kIdleTimeout - milliseconds(50));

  // A connection that never sends a byte is closed too.
  RawConnection silent(server_.port());
  EXPECT_TRUE(silent.WaitForClose(milliseconds(5000))) << "a silent connection stayed open";

  // Half a request, then nothing (slowloris): closed too.
  RawConnection partial(server_.port());
  partial.Send("GET /healthz HTTP/1.1\r\nHo");
  EXPECT_TRUE(partial.WaitForClose(milliseconds(5000)))
      << "a half-sent request kept the connection open";

  // A connection in use is kept open past the timeout.
  RawConnection busy(server_.port());
  const milliseconds gap = kIdleTimeout / 3;
  for (int i = 0; i < 8; ++i) {  // 8 gaps: well past one idle timeout
    busy.Send(kHealthRequest);
    ASSERT_EQ(busy.Read().result_int(), 200u) << "request " << i << " on a busy connection";
    EXPECT_FALSE(busy.WaitForClose(gap)) << "closed while in use, after request " << i;
  }
}

TEST_F(ConnectionE2E, ConnectionCloseIsHonoured) {
  RawConnection connection(server_.port());
  connection.Send("GET /healthz HTTP/1.1\r\nHost: e2e\r\nConnection: close\r\n\r\n");
  const HttpResponse response = connection.Read();
  EXPECT_EQ(response.result_int(), 200u);
  EXPECT_FALSE(response.keep_alive());
  EXPECT_TRUE(connection.WaitForClose(milliseconds(2000)));
}

TEST_F(ConnectionE2E, MalformedRequestGetsBadRequestAndClose) {
  RawConnection connection(server_.port());
  connection.Send("THIS IS NOT HTTP\r\n\r\n");
  const HttpResponse response = connection.Read();
  EXPECT_EQ(response.result_int(), 400u);
  EXPECT_EQ(JsonOf(response).at("error").as_string(), "bad_request");
  EXPECT_TRUE(connection.WaitForClose(milliseconds(2000)));

  // A malformed request after a good one in the same pipeline: the good one is answered first.
  RawConnection mixed(server_.port());
  mixed.Send(std::string(kHealthRequest) + "GET / HTTP/1.1\r\nBad Header Line\r\n\r\n");
  EXPECT_EQ(mixed.Read().result_int(), 200u);
  EXPECT_EQ(mixed.Read().result_int(), 400u);
  EXPECT_TRUE(mixed.WaitForClose(milliseconds(2000)));
}

}  // namespace
}  // namespace redpacket::e2e
