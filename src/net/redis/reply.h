// Redis replies as small C++ values, the client's error type, and how server errors are sorted
// into retryable and not retryable. Pure values: no I/O, safe from any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "net/redis/endpoint.h"

struct redisReply;  // hiredis, kept out of this header

namespace redpacket::net::redis {

struct Nil {
  bool operator==(const Nil&) const = default;
};
struct StatusReply {  // +OK
  std::string text;
  bool operator==(const StatusReply&) const = default;
};
struct ErrorReply {  // -ERR ...
  std::string text;
  bool operator==(const ErrorReply&) const = default;
};

class Reply {
 public:
  using Array = std::vector<Reply>;
  using Value = std::variant<Nil, std::int64_t, std::string, StatusReply, ErrorReply, Array>;

  Reply() = default;                                // nil
  Reply(Value value) : value_(std::move(value)) {}  // NOLINT(google-explicit-constructor)

  // Deep copy of a hiredis reply tree (the caller still frees it).
  static Reply FromHiredis(const redisReply& reply);

  bool IsNil() const { return std::holds_alternative<Nil>(value_); }
  bool IsInteger() const { return std::holds_alternative<std::int64_t>(value_); }
  bool IsString() const { return std::holds_alternative<std::string>(value_); }  // bulk string
  bool IsStatus() const { return std::holds_alternative<StatusReply>(value_); }
  bool IsError() const { return std::holds_alternative<ErrorReply>(value_); }
  bool IsArray() const { return std::holds_alternative<Array>(value_); }

  // Each requires the matching Is*() (std::bad_variant_access otherwise).
  std::int64_t integer() const { return std::get<std::int64_t>(value_); }
  const std::string& string() const { return std::get<std::string>(value_); }
  const std::string& status() const { return std::get<StatusReply>(value_).text; }
  const std::string& error() const { return std::get<ErrorReply>(value_).text; }
  const Array& array() const { return std::get<Array>(value_); }
  const Value& value() const { return value_; }

  // redis-cli-like rendering for logs and test failure messages.
  std::string DebugString() const;

  bool operator==(const Reply&) const = default;

 private:
  Value value_;
};

enum class ErrorKind {
  kConnection,     // could not connect, or the connection died with the command in flight
  kTimeout,        // the command's deadline passed
  kTryAgain,       // TRYAGAIN (multi-key command during resharding), BUSY (a script is running)
  kClusterDown,    // CLUSTERDOWN, MASTERDOWN, LOADING, READONLY: the node cannot serve it yet
  kNotReplicated,  // the write ran on the master but WAIT saw fewer replicas than required
  kServer,     // any other error reply: script error, WRONGTYPE, syntax... or too many redirects
  kCrossSlot,  // the keys of one command hash to different slots
  kProtocol,   // the server sent something that is not RESP
  kStopped,    // the client was stopped
};

const char* ErrorKindName(ErrorKind kind);
// Retryable: trying the same command again later may succeed. kNotReplicated counts as
// retryable because the write did happen; only an idempotent operation should be repeated.
bool IsRetryable(ErrorKind kind);

struct Error {
  ErrorKind kind = ErrorKind::kServer;
  std::string message;

  bool retryable() const { return IsRetryable(kind); }
  std::string ToString() const;  // "timeout: ..."
};

// What a command completes with: a reply, or an error (error replies of the server included).
class Result {
 public:
  Result(Reply reply) : value_(std::move(reply)) {}  // NOLINT(google-explicit-constructor)
  Result(Error error) : value_(std::move(error)) {}  // NOLINT(google-explicit-constructor)

  bool ok() const { return value_.index() == 0; }
  explicit operator bool() const { return ok(); }
  const Reply& reply() const { return std::get<Reply>(value_); }
  Reply& reply() { return std::get<Reply>(value_); }
  const Error& error() const { return std::get<Error>(value_); }

 private:
  std::variant<Reply, Error> value_;
};

// The kind of an error reply that is not a redirect; "ERR ..." and unknown prefixes are kServer.
ErrorKind ClassifyServerError(std::string_view error_text);

// "MOVED 3999 127.0.0.1:6381" / "ASK 3999 127.0.0.1:6381". Redis 7 may leave the host empty
// ("MOVED 3999 :6381"), meaning "the host you are talking to": endpoint.host is then "".
struct Redirect {
  enum class Kind { kMoved, kAsk };
  Kind kind = Kind::kMoved;
  int slot = 0;
  Endpoint endpoint;
};
std::optional<Redirect> ParseRedirect(std::string_view error_text);

}  // namespace redpacket::net::redis
