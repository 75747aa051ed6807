// One client connection of the server, a state machine on its loop's I/O thread: read, parse,
// dispatch to the RequestHandler, write the answers in request order (pipelining), idle timeout
// and head deadline, streaming responses, drain on shutdown. Internal to the transport; only
// Deliver may be called from another thread.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "http/transport/io_loop.h"
#include "http/transport/request_parser.h"
#include "http/transport/server.h"

namespace redpacket::http {

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  using SteadyClock = std::chrono::steady_clock;

  Connection(boost::asio::ip::tcp::socket socket, std::uint64_t address_key,
             const ServerOptions& options, RequestHandler& handler, ServerStats& stats,
             IoLoop& loop);

  // Joins the loop's connections and starts reading.
  void Start();
  // The answer to request `slot`, from any thread.
  void Deliver(std::uint64_t slot, Response response);
  // Hands the loop's inbox (answers delivered from other threads) to their connections.
  static void DrainInbox(IoLoop& loop);
  // Shutdown: answer what was read, take nothing new, then close.
  void Drain();
  // A streaming response's body, on the I/O thread (ResponseStream posts here).
  void StreamWrite(std::string chunk);
  void StreamEnd();

 private:
  // Small: thousands of idle or slow connections each hold one (4,000 slow heads: ~36 MiB RSS
  // at 4 KiB, ~84 MiB at 16 KiB). It doubles, up to the limits, when a request or pipeline
  // needs it.
  static constexpr std::size_t kInitialBuffer = 4 * 1024;

  struct Slot {
    bool ready = false;
    bool close = false;
    std::string wire;
    std::function<void(std::shared_ptr<ResponseStream>)> stream_start;  // a streaming response
  };

  void Read();
  void OnRead(boost::system::error_code error, std::size_t n);
  void ParseAvailable();
  void Dispatch(Request request);
  // A protocol error: answer it after what is already owed, then close.
  void Fail(domain::ErrorCode code, std::string message);
  void Complete(std::uint64_t slot, Response response);
  void Flush();
  void OnWrite(boost::system::error_code error);
  // The head of a streaming response has left: hand the stream to its writer and keep reading
  // (only to notice the peer leaving).
  void StartStream();
  void FlushStream();
  // One timer per connection, set to the earlier of the idle deadline and the head deadline.
  // last_activity_ moves without re-arming: the timer re-checks when it fires.
  void ArmTimer();
  void OnTimer();
  void Close();

  boost::asio::ip::tcp::socket socket_;
  const std::uint64_t address_key_;
  const ServerOptions& options_;
  RequestHandler& handler_;
  ServerStats& stats_;
  IoLoop& loop_;
  boost::asio::steady_timer timer_;
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

}  // namespace redpacket::http
