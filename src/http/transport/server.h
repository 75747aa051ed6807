// The HTTP/1.1 server: one io_context per thread, each with its own SO_REUSEPORT acceptor, so a
// connection lives on one thread for its whole life. Keep-alive and pipelining (answers go out in
// request order even when handlers finish out of order), header/body limits, idle timeouts, a
// deadline for each request head, and caps on open connections (in all, and per client address).
// Start/Stop from one control thread (Stop blocks up to its grace); the rest is thread-safe.
#pragma once

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "http/transport/connection_limiter.h"
#include "http/transport/request_handler.h"

namespace redpacket::http {

struct IoLoop;  // one I/O thread: io_context, acceptor, connections (io_loop.h)

struct ServerOptions {
  std::string host = "127.0.0.1";
  std::uint16_t port = 8080;
  int threads = 1;
  std::size_t header_limit = 8 * 1024;
  std::size_t body_limit = 64 * 1024;
  std::size_t max_pipelined = 64;  // requests in flight per connection before reading pauses
  std::chrono::milliseconds idle_timeout{60000};
  // A request head (request line and headers) must be complete this long after its first byte
  // arrived, however slowly it trickles in (each byte resets the idle timeout, not this). 0: none.
  std::chrono::milliseconds header_timeout{10000};
  // New connections beyond these are closed at once (0: no cap). Connections from one address
  // are counted across all I/O threads.
  std::size_t max_connections = 0;
  std::size_t max_connections_per_ip = 0;
  // A streaming response (Server-Sent Events): a write finding more than this many bytes still
  // waiting for the socket closes the connection. Its socket's send buffer is set to this size.
  std::size_t stream_buffer_limit = 64 * 1024;
};

struct ServerStats {
  std::atomic<std::int64_t> open_connections{0};
  std::atomic<std::uint64_t> accepted_connections{0};
  std::atomic<std::uint64_t> requests{0};
  std::atomic<std::uint64_t> parse_errors{0};
  std::atomic<std::uint64_t> header_timeouts{0};        // heads not complete within the deadline
  std::atomic<std::uint64_t> rejected_server_full{0};   // refused: max_connections reached
  std::atomic<std::uint64_t> rejected_address_full{0};  // refused: max_connections_per_ip reached
  std::atomic<std::uint64_t> streams_dropped{0};  // streaming responses closed: reader too slow
};

class Server {
 public:
  Server(ServerOptions options, RequestHandler& handler);
  ~Server();

  // Binds every thread's acceptor (throws std::runtime_error "cannot listen on host:port: ...")
  // and starts the I/O threads.
  void Start();
  // Blocking: stops accepting; connections finish the requests they have and close; waits up to
  // `grace` for them. The I/O threads go on running (what else runs on them can still finish).
  // Idempotent.
  void Drain(std::chrono::milliseconds grace);
  // Blocking: Drain(grace), then stops the I/O threads. Idempotent.
  void Stop(std::chrono::milliseconds grace);
  std::uint16_t port() const { return port_; }
  // The loops' io_contexts, one per I/O thread, after Start(); they live until the destructor
  // and stop running in Stop() (other components, e.g. the Redis store, run on them too).
  std::vector<boost::asio::io_context*> io_contexts() const;
  const ServerStats& stats() const { return stats_; }

 private:
  bool drained_ = false;
  bool stopped_ = false;
  ServerOptions options_;
  RequestHandler& handler_;
  std::vector<std::unique_ptr<IoLoop>> loops_;
  std::uint16_t port_ = 0;
  ServerStats stats_;
  std::unique_ptr<ConnectionLimiter> limiter_;
};

}  // namespace redpacket::http
