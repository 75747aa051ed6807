// Server: binding the port (a plain bind first, then one SO_REUSEPORT acceptor per I/O thread),
// the accept loop with the connection caps, and the graceful stop. The connections themselves
// are connection.cc's.
#include "http/transport/server.h"

#include <fmt/format.h>
#include <pthread.h>
#include <spdlog/spdlog.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <stdexcept>

#include "http/transport/connection.h"
#include "http/transport/io_loop.h"

namespace redpacket::http {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using SteadyClock = std::chrono::steady_clock;

Server::Server(ServerOptions options, RequestHandler& handler)
    : options_(std::move(options)), handler_(handler) {}

Server::~Server() {
  Stop(std::chrono::milliseconds(0));
  loops_.clear();
}

namespace {

void AcceptNext(IoLoop& loop, const ServerOptions& options, RequestHandler& handler,
                ServerStats& stats);

// At most one line per 10 s however fast connections are refused (a flood must not become a
// flood of log lines); it says how many were refused since the previous line.
void LogRefusal(const ServerStats& stats, const ServerOptions& options) {
  static std::atomic<std::int64_t> next_log_ns{0};
  static std::atomic<std::uint64_t> logged_total{0};
  const std::int64_t now_ns = SteadyClock::now().time_since_epoch().count();
  std::int64_t due = next_log_ns.load(std::memory_order_relaxed);
  if (now_ns < due ||
      !next_log_ns.compare_exchange_strong(
          due, now_ns + std::chrono::nanoseconds(std::chrono::seconds(10)).count())) {
    return;
  }
  const std::uint64_t total =
      stats.rejected_server_full.load() + stats.rejected_address_full.load();
  spdlog::warn(
      "refusing connections: {} refused since the last report (open {}, max_connections {}, "
      "max_connections_per_ip {}; 0 = no cap)",
      total - logged_total.exchange(total), stats.open_connections.load(), options.max_connections,
      options.max_connections_per_ip);
}

}  // namespace

void Server::Start() {
  const int threads = std::max(1, options_.threads);
  limiter_ = std::make_unique<ConnectionLimiter>(options_.max_connections,
                                                 options_.max_connections_per_ip);
  boost::system::error_code error;
  const auto address = asio::ip::make_address(options_.host, error);
  if (error)
    throw std::runtime_error(fmt::format("invalid --host {}: {}", options_.host, error.message()));
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
      throw std::runtime_error(
          fmt::format("cannot listen on {}:{}: {}", options_.host, port, error.message()));
    }
    port = probe.local_endpoint().port();  // port 0: the free port the kernel chose
  }
  for (int i = 0; i < threads; ++i) {
    auto loop = std::make_unique<IoLoop>();
    loop->limiter = limiter_.get();
    tcp::acceptor acceptor(loop->io);
    const tcp::endpoint endpoint(address, port);
    acceptor.open(endpoint.protocol(), error);
    if (!error) acceptor.set_option(tcp::acceptor::reuse_address(true), error);
    // Every loop binds the same port; the kernel spreads new connections across them.
    if (!error)
      acceptor.set_option(asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>(true),
                          error);
    if (!error) acceptor.bind(endpoint, error);
    if (!error) acceptor.listen(asio::socket_base::max_listen_connections, error);
    if (error) {
      throw std::runtime_error(
          fmt::format("cannot listen on {}:{}: {}", options_.host, port, error.message()));
    }
    port = acceptor.local_endpoint().port();
    loop->acceptor.emplace(std::move(acceptor));
    loops_.push_back(std::move(loop));
  }
  port_ = port;
  for (std::size_t i = 0; i < loops_.size(); ++i) {
    IoLoop& loop = *loops_[i];
    AcceptNext(loop, options_, handler_, stats_);
    loop.thread = std::thread([&loop, i] {
      pthread_setname_np(pthread_self(), fmt::format("rp-io-{}", i).c_str());
      loop.io.run();
    });
  }
}

namespace {

void AcceptNext(IoLoop& loop, const ServerOptions& options, RequestHandler& handler,
                ServerStats& stats) {
  loop.acceptor->async_accept([&loop, &options, &handler, &stats](boost::system::error_code error,
                                                                  tcp::socket socket) {
    if (error == asio::error::operation_aborted || !loop.acceptor->is_open()) return;
    if (error) {
      // Typically EMFILE: the connection stays queued and accept would fail again at once, so
      // pause instead of spinning on it.
      spdlog::warn("accept failed: {}", error.message());
      loop.accept_pause.expires_after(std::chrono::milliseconds(50));
      loop.accept_pause.async_wait(
          [&loop, &options, &handler, &stats](boost::system::error_code wait_error) {
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
        std::make_shared<Connection>(std::move(socket), address_key, options, handler, stats, loop)
            ->Start();
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
