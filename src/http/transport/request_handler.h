// What the transport asks of the code that answers requests (RequestHandler), and how that code
// answers: Responder (one response, from any thread) and ResponseStream (the rest of a streaming
// body, from any thread). Both are thread-safe and never block.
#pragma once

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "http/transport/request.h"
#include "http/transport/response.h"

namespace redpacket::http {

class Connection;

// Delivers a handler's response to its connection, from any thread, exactly once. Or, made
// from a function, to that function: how a request is answered without a socket (the in-process
// test fixture, tests/support/api_fixture.h).
class Responder {
 public:
  Responder(std::shared_ptr<Connection> connection, std::uint64_t slot)
      : connection_(std::move(connection)), slot_(slot) {}
  explicit Responder(std::function<void(Response)> deliver) : deliver_(std::move(deliver)) {}
  void operator()(Response response) const;

 private:
  std::shared_ptr<Connection> connection_;
  std::uint64_t slot_ = 0;
  std::function<void(Response)> deliver_;
};

// The rest of a streaming response's body (Response::on_stream), written from any thread. Each
// Write is queued on the connection's I/O thread; when more than ServerOptions::stream_buffer_limit
// bytes already wait there behind the write in flight, the connection is closed instead (a slow
// reader is dropped, never waited for). Thread-safe.
class ResponseStream {
 public:
  ResponseStream(std::weak_ptr<Connection> connection, boost::asio::io_context& io)
      : connection_(std::move(connection)), io_(io) {}
  // False once the connection is closed (the peer left, was too slow, or the server stops).
  bool Write(std::string chunk);
  // Ends the body: the connection closes once what was written has left.
  void End();
  bool closed() const { return closed_.load(std::memory_order_acquire); }
  void MarkClosed() { closed_.store(true, std::memory_order_release); }

 private:
  std::weak_ptr<Connection> connection_;
  boost::asio::io_context& io_;
  std::atomic<bool> closed_{false};
};

class RequestHandler {
 public:
  virtual ~RequestHandler() = default;
  // Runs on the connection's I/O thread; must not block. Calls `respond` exactly once, now or
  // later.
  virtual void Handle(Request request, Responder respond) = 0;
};

}  // namespace redpacket::http
