// An HTTP/1.1 request parser on Beast's basic_parser that keeps only the fields the service reads,
// so parsing a request allocates nothing beyond the target and body strings. Not thread-safe.
#pragma once

#include <boost/beast/http/basic_parser.hpp>

#include "http/transport/request.h"

namespace redpacket::http {

class RequestParser final : public boost::beast::http::basic_parser<true> {
 public:
  RequestParser(Request& request, std::size_t header_limit, std::size_t body_limit)
      : request_(request) {
    this->header_limit(static_cast<std::uint32_t>(header_limit));
    this->body_limit(body_limit);
    this->eager(true);
  }

 private:
  using error_code = boost::beast::error_code;
  using field = boost::beast::http::field;
  using string_view = boost::beast::string_view;

  void on_request_impl(boost::beast::http::verb method, string_view, string_view target, int,
                       error_code&) override {
    request_.method = method;
    request_.target.assign(target.data(), target.size());
  }
  void on_response_impl(int, string_view, int, error_code&) override {}
  void on_field_impl(field name, string_view name_string, string_view value, error_code&) override {
    if (name == field::authorization) {
      request_.has_authorization = true;
      request_.authorization.assign(value.data(), value.size());
    } else if (name == field::accept) {
      request_.accept.assign(value.data(), value.size());
    } else if (name == field::if_none_match) {
      request_.if_none_match.assign(value.data(), value.size());
    } else if (name == field::unknown) {
      if (EqualsLower(name_string, "x-user-id"))
        request_.user_id_header.assign(value.data(), value.size());
      else if (EqualsLower(name_string, "x-request-id"))
        request_.request_id_header.assign(value.data(), value.size());
      else if (EqualsLower(name_string, "last-event-id"))
        request_.last_event_id.assign(value.data(), value.size());
    }
  }
  void on_header_impl(error_code&) override { request_.keep_alive = this->keep_alive(); }
  void on_body_init_impl(const boost::optional<std::uint64_t>& length, error_code&) override {
    if (length) request_.body.reserve(static_cast<std::size_t>(*length));
  }
  std::size_t on_body_impl(string_view body, error_code&) override {
    request_.body.append(body.data(), body.size());
    return body.size();
  }
  void on_chunk_header_impl(std::uint64_t, string_view, error_code&) override {}
  std::size_t on_chunk_body_impl(std::uint64_t, string_view body, error_code&) override {
    request_.body.append(body.data(), body.size());
    return body.size();
  }
  void on_finish_impl(error_code&) override {}

  static bool EqualsLower(string_view text, std::string_view lower) {
    if (text.size() != lower.size()) return false;
    for (std::size_t i = 0; i < text.size(); ++i) {
      char c = text[i];
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
      if (c != lower[i]) return false;
    }
    return true;
  }

  Request& request_;
};

}  // namespace redpacket::http
