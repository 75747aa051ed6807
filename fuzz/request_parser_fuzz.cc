// libFuzzer target: arbitrary bytes through the HTTP request parser, fed in arbitrary pieces, as
// a connection would see them. Must never crash, hang or read out of bounds.
// Build with clang: see fuzz/README.md. Without clang, fuzz_corpus_replay (ctest, label unit)
// replays the corpus and seeded mutations of it through the same function.
#include <boost/asio/buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "http/transport/request_parser.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // The first byte picks the piece size, so the fuzzer explores split points too.
  const std::size_t piece = size == 0 ? 1 : 1 + data[0] % 64;
  std::string buffer;
  std::size_t offset = 0;
  std::size_t fed = 0;
  redpacket::http::Request request;
  std::optional<redpacket::http::RequestParser> parser;
  while (fed < size) {
    const std::size_t take = std::min(piece, size - fed);
    buffer.append(reinterpret_cast<const char*>(data) + fed, take);
    fed += take;
    // Pipelined requests: parse as many as the bytes so far hold.
    while (offset < buffer.size()) {
      if (!parser) {
        request = redpacket::http::Request{};
        parser.emplace(request, 8 * 1024, 64 * 1024);
      }
      boost::beast::error_code error;
      offset +=
          parser->put(boost::asio::buffer(buffer.data() + offset, buffer.size() - offset), error);
      if (error == boost::beast::http::error::need_more) break;
      if (error) return 0;  // the connection would answer 400/413 and close
      if (parser->is_done()) {
        (void)request.path();
        (void)request.query();
        parser.reset();
      }
    }
  }
  return 0;
}
