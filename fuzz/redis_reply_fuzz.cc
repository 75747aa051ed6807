// libFuzzer target: arbitrary bytes from a Redis server, fed in arbitrary pieces to the client's
// RESP reply reader (net/redis/protocol.h), and every error reply through the redirect and error
// classifiers. Byte 0 picks the piece size. Properties: the replies and the protocol error do not
// depend on how the bytes were split; a reply written back as RESP reads as the same reply; a
// parsed redirect has a slot in [0, 16383] and a port in [1, 65535].
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "fuzz_check.h"
#include "net/redis/protocol.h"
#include "net/redis/reply.h"

namespace {

using namespace redpacket::net::redis;

void Encode(const Reply& reply, std::string* out) {
  struct Writer {
    std::string* out;
    void operator()(const Nil&) const { *out += "$-1\r\n"; }
    void operator()(std::int64_t value) const { *out += ":" + std::to_string(value) + "\r\n"; }
    void operator()(const std::string& value) const {
      *out += "$" + std::to_string(value.size()) + "\r\n" + value + "\r\n";
    }
    void operator()(const StatusReply& value) const { *out += "+" + value.text + "\r\n"; }
    void operator()(const ErrorReply& value) const { *out += "-" + value.text + "\r\n"; }
    void operator()(const Reply::Array& value) const {
      *out += "*" + std::to_string(value.size()) + "\r\n";
      for (const Reply& element : value) Encode(element, out);
    }
  };
  std::visit(Writer{out}, reply.value());
}

// Every reply the bytes hold, in order, and whether the stream ended in a protocol error.
struct Parsed {
  std::vector<Reply> replies;
  bool protocol_error = false;
};

Parsed Read(std::string_view bytes, std::size_t piece) {
  Parsed parsed;
  ReplyReader reader;
  for (std::size_t fed = 0; fed < bytes.size() && !parsed.protocol_error;) {
    const std::size_t take = std::min(piece, bytes.size() - fed);
    reader.Feed(bytes.substr(fed, take));
    fed += take;
    while (true) {
      Reply reply;
      const auto status = reader.Next(&reply);
      if (status == ReplyReader::Status::kIncomplete) break;
      if (status == ReplyReader::Status::kProtocolError) {
        FUZZ_CHECK(!reader.error().empty());
        parsed.protocol_error = true;
        break;
      }
      parsed.replies.push_back(std::move(reply));
    }
  }
  return parsed;
}

void CheckErrorText(const Reply& reply) {
  if (reply.IsArray()) {
    for (const Reply& element : reply.array()) CheckErrorText(element);
    return;
  }
  if (!reply.IsError()) return;
  (void)ClassifyServerError(reply.error());
  (void)ErrorKindName(ClassifyServerError(reply.error()));
  if (auto redirect = ParseRedirect(reply.error())) {
    FUZZ_CHECK(redirect->slot >= 0 && redirect->slot < 16384);
    FUZZ_CHECK(redirect->endpoint.port >= 1 && redirect->endpoint.port <= 65535);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::size_t piece = 1 + data[0] % 32;
  const std::string_view bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  const Parsed pieces = Read(bytes, piece);
  const Parsed whole = Read(bytes, bytes.size() + 1);
  FUZZ_CHECK(pieces.protocol_error == whole.protocol_error);
  FUZZ_CHECK(pieces.replies == whole.replies);
  for (const Reply& reply : whole.replies) {
    CheckErrorText(reply);
    (void)reply.DebugString();
    std::string encoded;
    Encode(reply, &encoded);
    const Parsed again = Read(encoded, encoded.size() + 1);
    FUZZ_CHECK(!again.protocol_error && again.replies.size() == 1 && again.replies[0] == reply);
  }
  return 0;
}
