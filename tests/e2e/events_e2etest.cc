// GET /v1/packets/{id}/events (Server-Sent Events) against the real binary, over raw sockets: one
// grab event per grab in seq order with id = seq, then `finished` and the end of the stream;
// Last-Event-ID resumes with no gap and no repeat; the access rules of GET /v1/packets/{id}; the
// cap on open streams (503 with Retry-After, a place freed by a closed stream is reusable); a
// reader that stops reading is dropped (its backlog passes the buffer, or one write stalls for
// the idle timeout) and never slows the grabs; the page's routes.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <regex>

#include "harness.h"
#include "http/access/token.h"

namespace redpacket::e2e {
namespace {

using Clock = std::chrono::steady_clock;

struct Event {
  std::string type = "message";
  std::string id;
  std::string data;
};

// One event stream request on its own socket; every read is bounded by a deadline.
class EventStream {
 public:
  // `receive_buffer` > 0: SO_RCVBUF before connecting (a slow reader's small window).
  EventStream(std::uint16_t port, const std::string& path, const Headers& headers,
              int receive_buffer = 0) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (receive_buffer > 0)
      setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof receive_buffer);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd_ < 0 || connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
      throw std::runtime_error("cannot connect");
    }
    std::string request = "GET " + path + " HTTP/1.1\r\nHost: e2e\r\nAccept: text/event-stream\r\n";
    for (const auto& [name, value] : headers) request += name + ": " + value + "\r\n";
    request += "\r\n";
    if (send(fd_, request.data(), request.size(), MSG_NOSIGNAL) !=
        static_cast<ssize_t>(request.size())) {
      throw std::runtime_error("send failed");
    }
  }
  ~EventStream() { Close(); }
  void Close() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }

  // The status line and headers; the status code.
  int ReadHead(milliseconds timeout = milliseconds(5000)) {
    const auto deadline = Clock::now() + timeout;
    while (buffer_.find("\r\n\r\n") == std::string::npos) {
      if (!Fill(deadline)) throw std::runtime_error("no response head; got: " + buffer_);
    }
    const auto end = buffer_.find("\r\n\r\n");
    head_ = buffer_.substr(0, end + 4);
    buffer_.erase(0, end + 4);
    return std::stoi(head_.substr(9, 3));
  }
  const std::string& head() const { return head_; }
  // After a non-streaming head: the rest is a Content-Length body.
  std::string body() const { return buffer_; }

  // The next event (comments skipped); nullopt at the end of the stream or on timeout.
  std::optional<Event> Next(milliseconds timeout = milliseconds(5000)) {
    const auto deadline = Clock::now() + timeout;
    for (;;) {
      const auto end = buffer_.find("\n\n");
      if (end != std::string::npos) {
        const std::string block = buffer_.substr(0, end);
        buffer_.erase(0, end + 2);
        Event event;
        bool any = false;
        std::size_t start = 0;
        while (start <= block.size()) {
          std::size_t stop = block.find('\n', start);
          if (stop == std::string::npos) stop = block.size();
          const std::string line = block.substr(start, stop - start);
          start = stop + 1;
          if (line.empty() || line[0] == ':') continue;
          const auto colon = line.find(": ");
          const std::string field = line.substr(0, colon);
          const std::string value = colon == std::string::npos ? "" : line.substr(colon + 2);
          any = true;
          if (field == "event")
            event.type = value;
          else if (field == "id")
            event.id = value;
          else if (field == "data")
            event.data += value;
        }
        if (any) return event;
        continue;
      }
      if (!Fill(deadline)) return std::nullopt;
    }
  }
  // True once the server closed the stream (EOF or reset) within `timeout`, whatever came before.
  bool EndsWithin(milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    while (Fill(deadline)) {
    }
    return ended_;
  }

 private:
  bool Fill(Clock::time_point deadline) {
    if (ended_) return false;
    const auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return false;
    pollfd entry{fd_, POLLIN, 0};
    if (poll(&entry, 1, static_cast<int>(left)) <= 0) return false;
    char chunk[16384];
    const ssize_t n = recv(fd_, chunk, sizeof chunk, 0);
    if (n <= 0) {
      ended_ = true;
      return false;
    }
    buffer_.append(chunk, static_cast<std::size_t>(n));
    return true;
  }

  int fd_ = -1;
  std::string buffer_;
  std::string head_;
  bool ended_ = false;
};

Headers As(std::int64_t user) { return {{"X-User-Id", std::to_string(user)}}; }

std::string EventsPath(const std::string& packet_id) {
  return "/v1/packets/" + packet_id + "/events";
}

// Grabs `packet_id` as `user`; its reply's seq and amount.
GrabRecord Grab(ApiClient& api, const std::string& packet_id, std::int64_t user) {
  const Reply reply = api.Post("/v1/packets/" + packet_id + "/grab", "", user);
  if (reply.status != 200) throw std::runtime_error("grab: " + Describe(reply));
  return {user, reply.Int("amount_cents"), reply.Int("seq")};
}

void ExpectGrabEvent(const std::optional<Event>& event, const GrabRecord& grab) {
  ASSERT_TRUE(event.has_value()) << "no event for seq " << grab.seq;
  EXPECT_EQ(event->type, "grab");
  EXPECT_EQ(event->id, std::to_string(grab.seq));
  const json::object data = json::parse(event->data).as_object();
  EXPECT_EQ(data.at("seq").as_int64(), grab.seq);
  EXPECT_EQ(data.at("user_id").as_int64(), grab.user_id);
  EXPECT_EQ(data.at("amount_cents").as_int64(), grab.amount_cents);
}

std::int64_t MetricValue(ApiClient& api, const std::string& name) {
  const Reply metrics = api.Get("/metrics");
  std::smatch match;
  if (!std::regex_search(metrics.body, match, std::regex("\n" + name + " ([0-9.e+]+)"))) return -1;
  return static_cast<std::int64_t>(std::stod(match[1]));
}

TEST(EventsE2E, GrabsInSeqOrderThenFinishedThenTheEnd) {
  ServerProcess server;
  server.Start();
  ApiClient api(server);
  const std::int64_t sender = api.CreateFundedUser("sender", 10000);
  const std::string packet =
      api.CreatePacket(sender, R"({"total_cents":1000,"count":5,"greeting":"<b>hi</b>"})");

  EventStream stream(server.port(), EventsPath(packet), As(99));
  ASSERT_EQ(stream.ReadHead(), 200);
  EXPECT_NE(stream.head().find("Content-Type: text/event-stream"), std::string::npos)
      << stream.head();
  EXPECT_EQ(stream.head().find("Content-Length"), std::string::npos) << stream.head();
  // Nothing yet: no grab.
  EXPECT_FALSE(stream.Next(milliseconds(300)).has_value());

  std::vector<GrabRecord> grabs;
  for (std::int64_t user = 2; user <= 5; ++user) {
    grabs.push_back(Grab(api, packet, user));
    // Each grab shows at once (woken by the grab, not by the poll).
    ASSERT_NO_FATAL_FAILURE(ExpectGrabEvent(stream.Next(milliseconds(2000)), grabs.back()));
  }
  grabs.push_back(Grab(api, packet, 6));
  ASSERT_NO_FATAL_FAILURE(ExpectGrabEvent(stream.Next(), grabs.back()));
  const auto finished = stream.Next();
  ASSERT_TRUE(finished.has_value());
  EXPECT_EQ(finished->type, "finished");
  EXPECT_TRUE(finished->id.empty());
  const json::object details = json::parse(finished->data).as_object();
  EXPECT_EQ(details.at("status").as_string(), "exhausted");
  EXPECT_EQ(details.at("grabs").as_array().size(), 5u);
  EXPECT_EQ(details.at("greeting").as_string(), "<b>hi</b>");
  EXPECT_TRUE(details.at("best_luck_user_id").is_int64());
  EXPECT_TRUE(stream.EndsWithin(milliseconds(2000))) << "the stream stays open after finished";

  // A stream opened on a finished packet: every grab, then finished, then the end.
  EventStream late(server.port(), EventsPath(packet), As(99));
  ASSERT_EQ(late.ReadHead(), 200);
  for (const GrabRecord& grab : grabs) ASSERT_NO_FATAL_FAILURE(ExpectGrabEvent(late.Next(), grab));
  const auto late_finished = late.Next();
  ASSERT_TRUE(late_finished.has_value());
  EXPECT_EQ(late_finished->type, "finished");
  EXPECT_TRUE(late.EndsWithin(milliseconds(2000)));
}

TEST(EventsE2E, LastEventIdResumesWithoutGapOrRepeat) {
  ServerProcess server;
  server.Start();
  ApiClient api(server);
  const std::int64_t sender = api.CreateFundedUser("sender", 10000);
  const std::string packet = api.CreatePacket(sender, R"({"total_cents":600,"count":6})");
  std::vector<GrabRecord> grabs;
  {
    EventStream first(server.port(), EventsPath(packet), As(50));
    ASSERT_EQ(first.ReadHead(), 200);
    for (std::int64_t user = 10; user < 12; ++user) grabs.push_back(Grab(api, packet, user));
    ASSERT_NO_FATAL_FAILURE(ExpectGrabEvent(first.Next(), grabs[0]));
    ASSERT_NO_FATAL_FAILURE(ExpectGrabEvent(first.Next(), grabs[1]));
  }  // the client drops after seq 2
  for (std::int64_t user = 12; user < 15; ++user)
    grabs.push_back(Grab(api, packet, user));  // seq 3..5 meanwhile

  Headers resume = As(50);
  resume["Last-Event-ID"] = "2";
  EventStream second(server.port(), EventsPath(packet), resume);
  ASSERT_EQ(second.ReadHead(), 200);
  for (std::size_t i = 2; i < 5; ++i)
    ASSERT_NO_FATAL_FAILURE(ExpectGrabEvent(second.Next(), grabs[i]));
  EXPECT_FALSE(second.Next(milliseconds(400)).has_value()) << "an event beyond the grabs made";
  grabs.push_back(Grab(api, packet, 15));
  ASSERT_NO_FATAL_FAILURE(ExpectGrabEvent(second.Next(), grabs[5]));
  const auto finished = second.Next();
  ASSERT_TRUE(finished.has_value());
  EXPECT_EQ(finished->type, "finished");

  // Resuming after the last seq: only finished.
  resume["Last-Event-ID"] = "6";
  EventStream third(server.port(), EventsPath(packet), resume);
  ASSERT_EQ(third.ReadHead(), 200);
  const auto only = third.Next();
  ASSERT_TRUE(only.has_value());
  EXPECT_EQ(only->type, "finished");
}

TEST(EventsE2E, SameAccessAsThePacketDetails) {
  // Without --dev every caller needs a token signed with the server's secret.
  const std::string secret = "e2e-events-secret";
  ServerProcess server({"--token-secret", secret}, /*dev=*/false);
  server.Start();
  const auto token = [&](std::int64_t user, bool admin) {
    return Headers{
        {"Authorization", "Bearer " + http::SignToken({user, 4102444800, admin}, secret)}};
  };
  ApiClient api(server);
  ASSERT_EQ(api.Post("/v1/users/1/deposit", R"({"amount_cents":1000})", 0, token(1, true)).status,
            200);
  const Reply created =
      api.Post("/v1/packets", R"({"total_cents":100,"count":2})", 0, token(1, false));
  ASSERT_EQ(created.status, 201) << Describe(created);
  const std::string packet = created.String("packet_id");

  // The stream's status, checked equal to GET /v1/packets/{id}'s for the same caller and id.
  const auto status_of = [&](const std::string& id, const Headers& headers) {
    EventStream stream(server.port(), EventsPath(id), headers);
    const int events = stream.ReadHead();
    Headers plain = headers;
    plain.erase("Last-Event-ID");
    const int details = api.Get("/v1/packets/" + id, 0, plain).status;
    if (!headers.contains("Last-Event-ID")) {
      EXPECT_EQ(events, details) << id << ": events vs details";
    }
    return events;
  };
  EXPECT_EQ(status_of(packet, {}), 401);                    // no credential
  EXPECT_EQ(status_of(packet, {{"X-User-Id", "2"}}), 401);  // --dev only
  EXPECT_EQ(status_of(packet, {{"Authorization", "Bearer rp1.2.4102444800.0.00"}}), 401);  // forged
  EXPECT_EQ(status_of(packet, token(2, false)), 200);    // any user
  EXPECT_EQ(status_of("999999", token(2, false)), 404);  // unknown
  EXPECT_EQ(status_of("abc", token(2, false)), 400);
  Headers bad_resume = token(2, false);
  bad_resume["Last-Event-ID"] = "x";
  EXPECT_EQ(status_of(packet, bad_resume), 400);
}

TEST(EventsE2E, StreamsBeyondTheCapAreRefusedAndAClosedOneFreesItsPlace) {
  ServerProcess server({"--event-streams-max", "2"});
  server.Start();
  ApiClient api(server);
  const std::int64_t sender = api.CreateFundedUser("sender", 10000);
  const std::string packet = api.CreatePacket(sender, R"({"total_cents":100,"count":2})");
  auto first = std::make_unique<EventStream>(server.port(), EventsPath(packet), As(3));
  ASSERT_EQ(first->ReadHead(), 200);
  EventStream second(server.port(), EventsPath(packet), As(4));
  ASSERT_EQ(second.ReadHead(), 200);
  EventStream third(server.port(), EventsPath(packet), As(5));
  ASSERT_EQ(third.ReadHead(), 503);
  EXPECT_NE(third.head().find("Retry-After: "), std::string::npos) << third.head();
  EXPECT_EQ(MetricValue(api, "redpacket_event_streams_open"), 2);
  EXPECT_EQ(MetricValue(api, "redpacket_event_streams_refused_total"), 1);

  first.reset();  // the client leaves: the server notices and frees the place
  ASSERT_TRUE(WaitUntil([&] { return MetricValue(api, "redpacket_event_streams_open") == 1; },
                        milliseconds(5000)));
  EventStream fourth(server.port(), EventsPath(packet), As(6));
  EXPECT_EQ(fourth.ReadHead(), 200);
  // The streams still open work.
  const GrabRecord grab = Grab(api, packet, 7);
  ASSERT_NO_FATAL_FAILURE(ExpectGrabEvent(second.Next(), grab));
  ASSERT_NO_FATAL_FAILURE(ExpectGrabEvent(fourth.Next(), grab));
}

TEST(EventsE2E, AReaderThatStopsReadingIsDroppedAndGrabsGoOn) {
  ServerProcess server({"--event-stream-buffer-bytes", "4096", "--max-count", "1000"});
  server.Start();
  ApiClient api(server);
  const std::int64_t sender = api.CreateFundedUser("sender", 100000);
  constexpr int kShares = 400;
  const std::string packet = api.CreatePacket(sender, R"({"total_cents":4000,"count":400})");
  // A reader with a tiny window that never reads, and a healthy reader.
  EventStream stuck(server.port(), EventsPath(packet), As(2), /*receive_buffer=*/2048);
  ASSERT_EQ(stuck.ReadHead(), 200);
  EventStream healthy(server.port(), EventsPath(packet), As(3));
  ASSERT_EQ(healthy.ReadHead(), 200);

  // The healthy reader reads all along, on its own thread.
  std::vector<Event> received;
  std::thread reader([&] {
    while (auto event = healthy.Next(milliseconds(20000))) {
      received.push_back(*event);
      if (event->type == "finished") break;
    }
  });
  std::atomic<std::int64_t> next_user{1000};
  const auto started = Clock::now();
  std::atomic<int> acknowledged{0};
  RunThreads(8, [&](int) {
    ApiClient client(server);
    for (;;) {
      const Reply reply = client.Post("/v1/packets/" + packet + "/grab", "", next_user++);
      if (reply.status != 200) break;
      ++acknowledged;
      // Spread over many of the event thread's reads (a write each), as a real crowd would be.
      std::this_thread::sleep_for(milliseconds(10));
    }
  });
  const auto took = Clock::now() - started;
  EXPECT_EQ(acknowledged.load(), kShares);
  EXPECT_LT(took, std::chrono::seconds(30));

  reader.join();
  // The healthy reader got every grab in order, then finished.
  ASSERT_EQ(received.size(), static_cast<std::size_t>(kShares) + 1);
  for (int seq = 1; seq <= kShares; ++seq) ASSERT_EQ(received[seq - 1].id, std::to_string(seq));
  EXPECT_EQ(received.back().type, "finished");

  ASSERT_TRUE(
      WaitUntil([&] { return MetricValue(api, "redpacket_event_streams_dropped_total") >= 1; },
                milliseconds(5000)));
  // The stuck reader now reads: what was buffered, then the end, without the finished event.
  bool saw_finished = false;
  int events = 0;
  while (const auto event = stuck.Next(milliseconds(2000))) {
    ++events;
    saw_finished = saw_finished || event->type == "finished";
  }
  EXPECT_FALSE(saw_finished);
  EXPECT_LT(events, kShares);
  EXPECT_TRUE(stuck.EndsWithin(milliseconds(1000)));
}

TEST(EventsE2E, AReaderStalledOnOneBigWriteIsDroppedAfterTheIdleTimeout) {
  ServerProcess server(
      {"--event-stream-buffer-bytes", "4096", "--max-count", "1000", "--idle-timeout-ms", "1000"});
  server.Start();
  ApiClient api(server);
  const std::int64_t sender = api.CreateFundedUser("sender", 100000);
  const std::string packet = api.CreatePacket(sender, R"({"total_cents":3000,"count":300})");
  std::atomic<std::int64_t> next_user{1000};
  RunThreads(8, [&](int) {
    ApiClient client(server);
    while (client.Post("/v1/packets/" + packet + "/grab", "", next_user++).status == 200) {
    }
  });
  // Every grab and the finished event leave in one write (a stream opened on a finished packet):
  // never over the buffer, but the reader never takes it.
  const auto opened = Clock::now();
  EventStream stuck(server.port(), EventsPath(packet), As(2), /*receive_buffer=*/2048);
  ASSERT_EQ(stuck.ReadHead(), 200);
  ASSERT_TRUE(
      WaitUntil([&] { return MetricValue(api, "redpacket_event_streams_dropped_total") >= 1; },
                milliseconds(10000)));
  EXPECT_GE(Clock::now() - opened, milliseconds(900));
  EXPECT_TRUE(WaitUntil([&] { return MetricValue(api, "redpacket_event_streams_open") == 0; },
                        milliseconds(5000)));
}

TEST(EventsE2E, BrowserAtTheRootIsSentToThePageAndTheAssetsAreBuiltIn) {
  ServerProcess server;
  server.Start();
  ApiClient api(server);
  const Reply json_root = api.Get("/");
  EXPECT_EQ(json_root.status, 200);
  EXPECT_EQ(json_root.String("message"), "Red Packet System is running!");
  const Reply browser_root = api.Get("/", 0, {{"Accept", "text/html,application/xhtml+xml"}});
  EXPECT_EQ(browser_root.status, 302);
  for (const char* page : {"/app/", "/app/ops", "/app/p/12"}) {
    const Reply shell = api.Get(page);
    EXPECT_EQ(shell.status, 200) << page;
    EXPECT_NE(shell.body.find("data-dev=\"1\""), std::string::npos) << page;
    EXPECT_NE(shell.body.find("/app/static/app.js"), std::string::npos) << page;
  }
  EXPECT_EQ(api.Get("/app/static/app.js").status, 200);
  EXPECT_EQ(api.Get("/app/static/style.css").status, 200);
  EXPECT_EQ(api.Get("/app/static/nothing.js").status, 404);
}

}  // namespace
}  // namespace redpacket::e2e
