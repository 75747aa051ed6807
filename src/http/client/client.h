// A small blocking HTTP/1.1 client (Beast) with keep-alive, for `redpacket seed` and the tests:
// the other end of the wire, no part of the server. Blocks the calling thread; not thread-safe
// (one instance per thread).
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <cstdint>
#include <map>
#include <string>

namespace redpacket::http {

struct ClientResponse {
  int status = 0;  // 0: transport error (see body)
  std::string body;
  std::map<std::string, std::string> headers;  // lower-case names
};

class Client {
 public:
  Client(std::string host, std::uint16_t port);
  ~Client();
  // Reconnects once if the kept-alive connection was closed by the server.
  ClientResponse Request(std::string_view method, std::string_view target,
                         std::string_view body = {},
                         const std::map<std::string, std::string>& headers = {});
  ClientResponse Get(std::string_view target,
                     const std::map<std::string, std::string>& headers = {}) {
    return Request("GET", target, {}, headers);
  }
  ClientResponse Post(std::string_view target, std::string_view body,
                      const std::map<std::string, std::string>& headers = {}) {
    return Request("POST", target, body, headers);
  }
  void Close();

 private:
  bool Connect(std::string* error);
  std::string host_;
  std::uint16_t port_;
  boost::asio::io_context io_;
  boost::asio::ip::tcp::socket socket_;
  boost::beast::flat_buffer buffer_;
  bool connected_ = false;
};

}  // namespace redpacket::http
