// Server, its per-thread loops and the Connection state machine (read, parse, dispatch, write in
// order, idle timeout and head deadline, drain on shutdown), and the connection caps at accept.
#include "http/server.h"

#include <pthread.h>

#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <unordered_map>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http/error.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "http/request_parser.h"

namespace redpacket::http {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using SteadyClock = std::chrono::steady_clock;

struct Server::Loop {
  // Responses finished on other threads (the journal's completions), handed over in batches:
  // one post and one wake-up per batch instead of per response.
  struct Delivery {
    std::shared_ptr<Connection> connection;
    std::uint64_t slot;
    Response response;
  };
  std::mutex inbox_mutex;
  std::vector<Delivery> inbox;

  asio::io_context io{1};
  std::optional<tcp::acceptor> acceptor;
  asio::steady_timer accept_pause{io};  // after a failed accept (e.g. EMFILE), before the next
  ConnectionLimiter* limiter = nullptr;
  std::unordered_map<Connection*, std::shared_ptr<Connection>> connections;  // io thread only
  std::thread thread;
  bool draining = false;  // io thread only
};

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(tcp::socket socket, std::uint64_t address_key, const ServerOptions& options,
             RequestHandler& handler, ServerStats& stats, Server::Loop& loop)
      : socket_(std::move(socket)),
        address_key_(address_key),
        options_(options),
        handler_(handler),
        stats_(stats),
        loop_(loop),
        timer_(socket_.get_executor()) {
    buffer_.resize(kInitialBuffer);
  }

  void Start() {
    loop_.connections.emplace(this, shared_from_this());
    ++stats_.open_connections;
    ++stats_.accepted_connections;
    last_activity_ = SteadyClock::now();
    ArmTimer();
    Read();
  }

  // From any thread.
  void Deliver(std::uint64_t slot, Response response) {
    if (loop_.io.get_executor().running_in_this_thread()) return Complete(slot, std::move(response));
    bool first;
    {
      std::lock_guard lock(loop_.inbox_mutex);
      first = loop_.inbox.empty();
      loop_.inbox.push_back({shared_from_this(), slot, std::move(response)});
    }
    if (first) asio::post(loop_.io, [&loop = loop_] { DrainInbox(loop); });
  }

  static void DrainInbox(Server::Loop& loop) {
    std::vector<Server::Loop::Delivery> deliveries;
    {
      std::lock_guard lock(loop.inbox_mutex);
      deliveries.swap(loop.inbox);
    }
    for (auto& delivery : deliveries) delivery.connection->Complete(delivery.slot, std::move(delivery.response));
  }

  // Shutdown: answer what was read, take nothing new, then close.
  void Drain() {
    closing_ = true;
    if (stream_ || (slots_.empty() && !writing_)) Close();
  }

  // A streaming response's body, on the I/O thread (ResponseStream posts here).
  void StreamWrite(std::string chunk) {
    if (closed_ || !stream_) return;
    if (stream_pending_.size() > options_.stream_buffer_limit) {
      // The reader does not keep up (more than the limit still waits behind the write in
      // flight): drop it rather than buffer without bound. One event larger than the limit (the
      // details of a big packet) still goes to a reader that keeps up.
      ++stats_.streams_dropped;
      return Close();
    }
    stream_pending_.append(chunk);
    FlushStream();
  }
  void StreamEnd() {
    if (closed_ || !stream_) return;
    stream_ended_ = true;
    if (!writing_ && stream_pending_.empty()) Close();
  }

 private:
  // Small: thousands of idle or slow connections each hold one (4,000 slow heads: ~36 MiB RSS
  // at 4 KiB, ~84 MiB at 16 KiB). It doubles, up to the limits, when a request or pipeline needs it.
  static constexpr std::size_t kInitialBuffer = 4 * 1024;

  struct Slot {
    bool ready = false;
    bool close = false;
    std::string wire;
    std::function<void(std::shared_ptr<ResponseStream>)> stream_start;  // a streaming response
  };

  void Read() {
    if (reading_ || closed_) return;
    if (end_ == buffer_.size()) {
      // The unparsed request fills the buffer: grow up to what the limits allow.
      const std::size_t most = options_.header_limit + options_.body_limit + 4096;
      if (begin_ > 0) {
        std::memmove(buffer_.data(), buffer_.data() + begin_, end_ - begin_);
        end_ -= begin_;
        begin_ = 0;
      } else if (buffer_.size() < most) {
        buffer_.resize(std::min(most, buffer_.size() * 2));
      } else {
        return Fail(domain::ErrorCode::kPayloadTooLarge, "request too large");
      }
    }
    reading_ = true;
    socket_.async_read_some(asio::buffer(buffer_.data() + end_, buffer_.size() - end_),
                            [self = shared_from_this()](boost::system::error_code error, std::size_t n) {
                              self->OnRead(error, n);
                            });
  }

  void OnRead(boost::system::error_code error, std::size_t n) {
    reading_ = false;
    if (stream_) {
      // Streaming: a read only notices the peer leaving; whatever it sends is ignored.
      if (error) return Close();
      begin_ = end_ = 0;
      return Read();
    }
    if (error) {
      // The peer closed or reset: answer nothing more; close once what is owed is written.
      closing_ = true;
      if (slots_.empty() && !writing_) Close();
      return;
    }
    end_ += n;
    last_activity_ = SteadyClock::now();
    ParseAvailable();
  }

  void ParseAvailable() {
    while (!closing_ && slots_.size() < options_.max_pipelined && begin_ < end_) {
      if (!parser_) {
        request_ = Request{};
        request_.peer_key = address_key_;
        parser_.emplace(request_, options_.header_limit, options_.body_limit);
      }
      boost::beast::error_code error;
      const std::size_t used = parser_->put(asio::buffer(buffer_.data() + begin_, end_ - begin_), error);
      begin_ += used;
      if (parser_->is_header_done()) head_deadline_.reset();
      if (error == boost::beast::http::error::need_more) break;
      if (error) {
        ++stats_.parse_errors;
        const bool too_large = error == boost::beast::http::error::header_limit ||
                               error == boost::beast::http::error::body_limit ||
                               error == boost::beast::http::error::buffer_overflow;
        return Fail(too_large ? domain::ErrorCode::kPayloadTooLarge : domain::ErrorCode::kBadRequest,
                    too_large ? fmt::format("request exceeds the limits (headers {} bytes, body {} bytes)",
                                            options_.header_limit, options_.body_limit)
                              : "malformed HTTP request: " + error.message());
      }
      if (parser_->is_done()) {
        parser_.reset();
        Dispatch(std::move(request_));
      }
    }
    if (begin_ == end_) begin_ = end_ = 0;
    // A head has begun and waits for more bytes: it must be complete by its deadline, counted
    // from the read that brought its first bytes. Each byte resets the idle timeout, so without
    // this a client trickling a byte a second would hold the connection for ever.
    if (parser_ && !parser_->is_header_done() && !head_deadline_ && options_.header_timeout.count() > 0) {
      head_deadline_ = last_activity_ + options_.header_timeout;
      ArmTimer();
    }
    if (!closing_ && slots_.size() < options_.max_pipelined) Read();
  }

  void Dispatch(Request request) {
    const std::uint64_t slot = first_slot_ + slots_.size();
    slots_.emplace_back();
    if (!request.keep_alive || loop_.draining) {
      slots_.back().close = true;
      closing_ = true;
    }
    ++stats_.requests;
    handler_.Handle(std::move(request), Responder(shared_from_this(), slot));
  }

  // A protocol error: answer it after what is already owed, then close.
  void Fail(domain::ErrorCode code, std::string message) {
    const std::uint64_t slot = first_slot_ + slots_.size();
    slots_.emplace_back();
    closing_ = true;
    Response response = ErrorResponse(code, message);
    response.close = true;
    Complete(slot, std::move(response));
  }

  void Complete(std::uint64_t slot, Response response) {
    if (closed_ || slot < first_slot_) return;
    Slot& entry = slots_[slot - first_slot_];
    entry.close = entry.close || response.close || (closing_ && slot + 1 == first_slot_ + slots_.size());
    if (response.on_stream) response.close = entry.close = true;  // nothing follows a stream
    response.close = entry.close;
    AppendWire(response, entry.wire);
    entry.stream_start = std::move(response.on_stream);
    entry.ready = true;
    Flush();
  }

  void Flush() {
    if (writing_ || closed_) return;
    bool close_after = false;
    while (!slots_.empty() && slots_.front().ready) {
      Slot& front = slots_.front();
      if (write_buffer_.empty()) write_buffer_.swap(front.wire);
      else write_buffer_.append(front.wire);
      close_after = front.close;
      if (front.stream_start) stream_start_ = std::move(front.stream_start);
      slots_.pop_front();
      ++first_slot_;
      if (close_after) break;
    }
    if (write_buffer_.empty()) {
      if (closing_ && slots_.empty()) Close();
      return;
    }
    writing_ = true;
    close_after_write_ = close_after && !stream_start_;
    asio::async_write(socket_, asio::buffer(write_buffer_),
                      [self = shared_from_this()](boost::system::error_code error, std::size_t) {
                        self->OnWrite(error);
                      });
  }

  void OnWrite(boost::system::error_code error) {
    writing_ = false;
    write_buffer_.clear();
    last_activity_ = SteadyClock::now();
    if (error || close_after_write_) return Close();
    if (stream_start_) return StartStream();
    if (stream_) {
      if (loop_.draining || (stream_ended_ && stream_pending_.empty())) return Close();
      return FlushStream();
    }
    Flush();
    if (!writing_ && closing_ && slots_.empty()) return Close();
    ParseAvailable();  // reading may have paused at the pipelining limit
  }

  // The head of a streaming response has left: hand the stream to its writer and keep reading
  // (only to notice the peer leaving).
  void StartStream() {
    boost::system::error_code ignored;
    // A small send buffer: a reader that stops reading is noticed after about this many bytes
    // (the kernel doubles it), not after the several MiB of an auto-tuned loopback buffer.
    socket_.set_option(asio::socket_base::send_buffer_size(static_cast<int>(options_.stream_buffer_limit)), ignored);
    stream_ = std::make_shared<ResponseStream>(weak_from_this(), loop_.io);
    auto start = std::move(stream_start_);
    stream_start_ = nullptr;
    start(stream_);
    begin_ = end_ = 0;  // anything the client sent after its request is ignored
    Read();
  }

  void FlushStream() {
    if (writing_ || closed_ || stream_pending_.empty()) return;
    write_buffer_.swap(stream_pending_);
    writing_ = true;
    close_after_write_ = false;
    asio::async_write(socket_, asio::buffer(write_buffer_),
                      [self = shared_from_this()](boost::system::error_code error, std::size_t) {
                        self->OnWrite(error);
                      });
  }

  // One timer per connection, set to the earlier of the idle deadline and the head deadline.
  // last_activity_ moves without re-arming: the timer re-checks when it fires.
  void ArmTimer() {
    if (closed_) return;
    SteadyClock::time_point next = last_activity_ + options_.idle_timeout;
    if (head_deadline_) next = std::min(next, *head_deadline_);
    // Idle for long but a handler still owes an answer: look again shortly, without spinning.
    next = std::max(next, SteadyClock::now() + std::chrono::milliseconds(10));
    if (timer_armed_ && timer_expiry_ <= next) return;
    timer_armed_ = true;
    timer_expiry_ = next;
    timer_.expires_at(next);  // cancels a later wait: its handler sees operation_aborted
    timer_.async_wait([self = shared_from_this()](boost::system::error_code error) {
      if (error) return;
      self->timer_armed_ = false;
      self->OnTimer();
    });
  }

  void OnTimer() {
    if (closed_) return;
    const auto now = SteadyClock::now();
    if (head_deadline_ && now >= *head_deadline_) {
      // Too slow a head: drop it, answer what was read before it, then close.
      ++stats_.header_timeouts;
      head_deadline_.reset();
      closing_ = true;
      if (slots_.empty() && !writing_) return Close();
    }
    // A stream is idle when nothing left for that long, even with a write pending (a reader
    // that stopped reading); its writer sends heartbeats more often than this.
    if (now - last_activity_ >= options_.idle_timeout && (stream_ || (slots_.empty() && !writing_))) {
      if (stream_ && writing_) ++stats_.streams_dropped;  // a reader that stopped reading
      return Close();
    }
    ArmTimer();
  }

  void Close() {
    if (closed_) return;
    closed_ = true;
    boost::system::error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_both, ignored);
    socket_.close(ignored);
    timer_.cancel();
    if (stream_) stream_->MarkClosed();
    --stats_.open_connections;
    loop_.limiter->Release(address_key_);
    loop_.connections.erase(this);  // may drop the last owner: touch nothing after this
  }

  tcp::socket socket_;
  const std::uint64_t address_key_;
  const ServerOptions& options_;
  RequestHandler& handler_;
  ServerStats& stats_;
  Server::Loop& loop_;
  asio::steady_timer timer_;
  bool timer_armed_ = false;
  SteadyClock::time_point timer_expiry_;
  SteadyClock::time_point last_activity_;
  std::optional<SteadyClock::time_point> head_deadline_;  // set while a head is incomplete

  std::vector<char> buffer_;
  std::size_t begin_ = 0;
  std::size_t end_ = 0;
  Request request_;
  std::optional<RequestParser> parser_;

  std::deque<Slot> slots_;  // requests read and not yet written, in order
  std::uint64_t first_slot_ = 0;
  std::string write_buffer_;
  bool reading_ = false;
  bool writing_ = false;
  bool closing_ = false;  // read no more requests
  bool close_after_write_ = false;
  bool closed_ = false;

  // A streaming response: its writer (set once its head has left), the bytes it wrote that wait
  // for the socket, and whether it has ended.
  std::function<void(std::shared_ptr<ResponseStream>)> stream_start_;
  std::shared_ptr<ResponseStream> stream_;
  std::string stream_pending_;
  bool stream_ended_ = false;
};

bool ResponseStream::Write(std::string chunk) {
  if (closed()) return false;
  auto connection = connection_.lock();
  if (!connection) return false;
  asio::post(io_, [connection = std::move(connection), chunk = std::move(chunk)]() mutable {
    connection->StreamWrite(std::move(chunk));
  });
  return true;
}

void ResponseStream::End() {
  auto connection = connection_.lock();
  if (!connection) return;
  asio::post(io_, [connection = std::move(connection)] { connection->StreamEnd(); });
}

void Responder::operator()(Response response) const { connection_->Deliver(slot_, std::move(response)); }

Server::Server(ServerOptions options, RequestHandler& handler) : options_(std::move(options)), handler_(handler) {}

Server::~Server() {
  Stop(std::chrono::milliseconds(0));
  loops_.clear();
}

namespace {

void AcceptNext(Server::Loop& loop, const ServerOptions& options, RequestHandler& handler, ServerStats& stats);

// At most one line per 10 s however fast connections are refused (a flood must not become a
// flood of log lines); it says how many were refused since the previous line.
void LogRefusal(const ServerStats& stats, const ServerOptions& options) {
  static std::atomic<std::int64_t> next_log_ns{0};
  static std::atomic<std::uint64_t> logged_total{0};
  const std::int64_t now_ns = SteadyClock::now().time_since_epoch().count();
  std::int64_t due = next_log_ns.load(std::memory_order_relaxed);
  if (now_ns < due || !next_log_ns.compare_exchange_strong(
                          due, now_ns + std::chrono::nanoseconds(std::chrono::seconds(10)).count())) {
    return;
  }
  const std::uint64_t total = stats.rejected_server_full.load() + stats.rejected_address_full.load();
  spdlog::warn(
      "refusing connections: {} refused since the last report (open {}, max_connections {}, "
      "max_connections_per_ip {}; 0 = no cap)",
      total - logged_total.exchange(total), stats.open_connections.load(), options.max_connections,
      options.max_connections_per_ip);
}

}  // namespace

void Server::Start() {
  const int threads = std::max(1, options_.threads);
  limiter_ = std::make_unique<ConnectionLimiter>(options_.max_connections, options_.max_connections_per_ip);
  boost::system::error_code error;
  const auto address = asio::ip::make_address(options_.host, error);
  if (error) throw std::runtime_error(fmt::format("invalid --host {}: {}", options_.host, error.message()));
  std::uint16_t port = options_.port;
  {
    // SO_REUSEPORT lets any process of the same user bind a port that is already taken and
    // silently share its traffic. A plain bind first makes "port in use" a startup error.
    asio::io_context probe_io;
    tcp::acceptor probe(probe_io);
    const tcp::endpoint endpoint(address, port);
    probe.open(endpoint.protocol(), error);
    if (!error) probe.set_option(tcp::acceptor::reuse_address(true), error);
    if (!error) probe.bind(endpoint, error);
    if (error) {
      throw std::runtime_error(fmt::format("cannot listen on {}:{}: {}", options_.host, port, error.message()));
    }
    port = probe.local_endpoint().port();  // port 0: the free port the kernel chose
  }
  for (int i = 0; i < threads; ++i) {
    auto loop = std::make_unique<Loop>();
    loop->limiter = limiter_.get();
    tcp::acceptor acceptor(loop->io);
    const tcp::endpoint endpoint(address, port);
    acceptor.open(endpoint.protocol(), error);
    if (!error) acceptor.set_option(tcp::acceptor::reuse_address(true), error);
    // Every loop binds the same port; the kernel spreads new connections across them.
    if (!error) acceptor.set_option(asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>(true), error);
    if (!error) acceptor.bind(endpoint, error);
    if (!error) acceptor.listen(asio::socket_base::max_listen_connections, error);
    if (error) {
      throw std::runtime_error(fmt::format("cannot listen on {}:{}: {}", options_.host, port, error.message()));
    }
    port = acceptor.local_endpoint().port();
    loop->acceptor.emplace(std::move(acceptor));
    loops_.push_back(std::move(loop));
  }
  port_ = port;
  for (std::size_t i = 0; i < loops_.size(); ++i) {
    Loop& loop = *loops_[i];
    AcceptNext(loop, options_, handler_, stats_);
    loop.thread = std::thread([&loop, i] {
      pthread_setname_np(pthread_self(), fmt::format("rp-io-{}", i).c_str());
      loop.io.run();
    });
  }
}

namespace {

void AcceptNext(Server::Loop& loop, const ServerOptions& options, RequestHandler& handler, ServerStats& stats) {
  loop.acceptor->async_accept([&loop, &options, &handler, &stats](boost::system::error_code error,
                                                                  tcp::socket socket) {
    if (error == asio::error::operation_aborted || !loop.acceptor->is_open()) return;
    if (error) {
      // Typically EMFILE: the connection stays queued and accept would fail again at once, so
      // pause instead of spinning on it.
      spdlog::warn("accept failed: {}", error.message());
      loop.accept_pause.expires_after(std::chrono::milliseconds(50));
      loop.accept_pause.async_wait([&loop, &options, &handler, &stats](boost::system::error_code wait_error) {
        if (!wait_error && loop.acceptor->is_open()) AcceptNext(loop, options, handler, stats);
      });
      return;
    }
    const tcp::endpoint peer = socket.remote_endpoint(error);
    // A peer gone already has no endpoint: it is dropped below by the failing reads.
    const std::uint64_t address_key = error ? 0 : AddressKey(peer.address());
    switch (loop.limiter->TryAdmit(address_key)) {
      case ConnectionLimiter::Verdict::kAdmitted:
        socket.set_option(tcp::no_delay(true), error);
        std::make_shared<Connection>(std::move(socket), address_key, options, handler, stats, loop)->Start();
        break;
      case ConnectionLimiter::Verdict::kServerFull:
        ++stats.rejected_server_full;
        socket.close(error);  // closed at once: a full server takes no more file descriptors
        LogRefusal(stats, options);
        break;
      case ConnectionLimiter::Verdict::kAddressFull:
        ++stats.rejected_address_full;
        socket.close(error);
        LogRefusal(stats, options);
        break;
    }
    AcceptNext(loop, options, handler, stats);
  });
}

}  // namespace

std::vector<boost::asio::io_context*> Server::io_contexts() const {
  std::vector<boost::asio::io_context*> contexts;
  for (const auto& loop : loops_) contexts.push_back(&loop->io);
  return contexts;
}

void Server::Drain(std::chrono::milliseconds grace) {
  if (loops_.empty() || std::exchange(drained_, true)) return;
  for (auto& loop : loops_) {
    asio::post(loop->io, [&loop = *loop] {
      loop.draining = true;
      boost::system::error_code ignored;
      loop.acceptor->close(ignored);
      loop.accept_pause.cancel();
      std::vector<std::shared_ptr<Connection>> connections;
      for (auto& [raw, connection] : loop.connections) connections.push_back(connection);
      for (auto& connection : connections) connection->Drain();
    });
  }
  const auto deadline = SteadyClock::now() + grace;
  while (stats_.open_connections.load() > 0 && SteadyClock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

void Server::Stop(std::chrono::milliseconds grace) {
  // The loops (and their io_contexts) stay alive until the destructor: a handler still waiting
  // on the journal may deliver its response after this returns; it is then dropped, not a crash.
  if (loops_.empty() || std::exchange(stopped_, true)) return;
  Drain(grace);
  for (auto& loop : loops_) loop->io.stop();
  for (auto& loop : loops_) {
    if (loop->thread.joinable()) loop->thread.join();
  }
}

}  // namespace redpacket::http
