// RESP on the wire through hiredis: command encoding (redisFormatCommandArgv) and an incremental
// reply parser (redisReader). No I/O; an instance belongs to one connection, not thread-safe.
#pragma once

#include <initializer_list>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "net/redis/reply.h"

struct redisReader;  // hiredis

namespace redpacket::net::redis {

// Appends the RESP encoding of a non-empty argv ("SET", "k", "v") to *out.
void AppendCommand(std::span<const std::string_view> argv, std::string* out);
void AppendCommand(std::initializer_list<std::string_view> argv, std::string* out);
std::string EncodeCommand(std::span<const std::string_view> argv);
std::string EncodeCommand(std::initializer_list<std::string_view> argv);

// Turns the encoding of "EVALSHA <sha1> numkeys keys... args..." into that of
// "EVAL <source> numkeys keys... args..." without re-encoding the keys and arguments.
// nullopt when `evalsha` is not such an encoding.
std::optional<std::string> RewriteEvalShaAsEval(std::string_view evalsha, std::string_view source);

// Feeds bytes as they arrive and takes complete replies out, in order.
class ReplyReader {
 public:
  enum class Status { kReply, kIncomplete, kProtocolError };

  ReplyReader();
  ~ReplyReader();
  ReplyReader(const ReplyReader&) = delete;
  ReplyReader& operator=(const ReplyReader&) = delete;

  void Feed(std::string_view bytes);
  // kReply: *reply holds the next reply. kProtocolError: the stream is broken for good (see
  // error()); the connection must be dropped. An array announcing more than 2^24 elements is a
  // protocol error (hiredis would allocate for all of them before reading one).
  Status Next(Reply* reply);
  std::string error() const;
  // Forgets buffered bytes and any error, for a new connection.
  void Reset();

 private:
  int refused_elements_ = 0;  // the count of an array refused for its size (set by hiredis' callback)
  redisReader* reader_;
};

}  // namespace redpacket::net::redis
