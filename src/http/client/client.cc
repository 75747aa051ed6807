// Client: one blocking request at a time over a kept-alive connection, reconnecting once.
#include "http/client/client.h"

#include <boost/asio/connect.hpp>
#include <boost/beast/http.hpp>

namespace redpacket::http {

namespace beast = boost::beast;
namespace asio = boost::asio;

Client::Client(std::string host, std::uint16_t port)
    : host_(std::move(host)), port_(port), socket_(io_) {}

Client::~Client() { Close(); }

void Client::Close() {
  boost::system::error_code ignored;
  socket_.shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
  socket_.close(ignored);
  connected_ = false;
  buffer_.clear();
}

bool Client::Connect(std::string* error) {
  boost::system::error_code code;
  const auto address = asio::ip::make_address(host_, code);
  if (!code) socket_.connect(asio::ip::tcp::endpoint(address, port_), code);
  if (code) {
    *error = "cannot connect to " + host_ + ":" + std::to_string(port_) + ": " + code.message();
    Close();
    return false;
  }
  socket_.set_option(asio::ip::tcp::no_delay(true), code);
  connected_ = true;
  return true;
}

ClientResponse Client::Request(std::string_view method, std::string_view target,
                               std::string_view body,
                               const std::map<std::string, std::string>& headers) {
  beast::http::request<beast::http::string_body> request(beast::http::string_to_verb(method),
                                                         target, 11);
  request.set(beast::http::field::host, host_);
  for (const auto& [name, value] : headers) request.set(name, value);
  if (!body.empty() || method == "POST") {
    request.body() = std::string(body);
    if (!request.count(beast::http::field::content_type))
      request.set(beast::http::field::content_type, "application/json");
    request.prepare_payload();
  }
  ClientResponse out;
  for (int attempt = 0; attempt < 2; ++attempt) {
    std::string error;
    const bool reused = connected_;
    if (!connected_ && !Connect(&error)) {
      out.body = error;
      return out;
    }
    boost::system::error_code code;
    beast::http::write(socket_, request, code);
    beast::http::response_parser<beast::http::string_body> parser;
    parser.body_limit(64u << 20);
    if (!code) beast::http::read(socket_, buffer_, parser, code);
    if (code) {
      Close();
      out.body = "transport error: " + code.message();
      if (!reused) return out;
      continue;  // a kept-alive connection the server had closed: one fresh try
    }
    auto response = parser.release();
    out.status = static_cast<int>(response.result_int());
    out.body = std::move(response.body());
    for (const auto& field : response) {
      std::string name(field.name_string());
      for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      out.headers[name] = std::string(field.value());
    }
    if (!response.keep_alive()) Close();
    return out;
  }
  return out;
}

}  // namespace redpacket::http
