// One I/O thread of the server: its io_context, acceptor and connections, and the inbox through
// which other threads hand it finished responses. Internal to the transport (server.cc creates
// and runs the loops, connection.cc lives on them). Only the inbox is shared between threads.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <vector>

#include "http/transport/connection_limiter.h"
#include "http/transport/response.h"

namespace redpacket::http {

class Connection;

struct IoLoop {
  // Responses finished on other threads (the journal's completions), handed over in batches:
  // one post and one wake-up per batch instead of per response.
  struct Delivery {
    std::shared_ptr<Connection> connection;
    std::uint64_t slot;
    Response response;
  };
  std::mutex inbox_mutex;
  std::vector<Delivery> inbox;

  boost::asio::io_context io{1};
  std::optional<boost::asio::ip::tcp::acceptor> acceptor;
  // After a failed accept (e.g. EMFILE), before the next.
  boost::asio::steady_timer accept_pause{io};
  ConnectionLimiter* limiter = nullptr;
  std::unordered_map<Connection*, std::shared_ptr<Connection>> connections;  // io thread only
  std::thread thread;
  bool draining = false;  // io thread only
};

}  // namespace redpacket::http
