// Error codes of the API contract and a small Result<T>: the hot path returns values, not
// exceptions (exceptions are for startup and configuration errors only).
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace redpacket::domain {

enum class ErrorCode {
  kOk,
  kBadRequest,         // 400
  kUnauthenticated,    // 401
  kInsufficientFunds,  // 402
  kForbidden,          // 403
  kNotFound,           // 404
  kMethodNotAllowed,   // 405: a known path, another method (with an Allow header)
  kConflict,           // 409
  kIdempotencyConflict,  // 409: a request_id reused for a different request
  kGone,               // 410
  kPayloadTooLarge,    // 413
  kRateLimited,        // 429
  kInternal,           // 500
  kUnavailable,        // 503
  // 500 to an HTTP client (never sent as such): the ledger's rules refuse an event on its own
  // (unknown packet, wrong amount, seq or sender, a share paid twice). Unlike every other
  // failure of ApplyEvents, retrying the same event can never succeed: the worker sets it aside.
  kRefused,
};

// The wire name ("bad_request") and HTTP status of an error code.
const char* ErrorName(ErrorCode code);
int HttpStatus(ErrorCode code);

struct Error {
  ErrorCode code = ErrorCode::kInternal;
  std::string message;
};

inline Error MakeError(ErrorCode code, std::string message) { return Error{code, std::move(message)}; }

template <class T>
class Result {
 public:
  Result(T value) : value_(std::move(value)) {}  // NOLINT(google-explicit-constructor)
  Result(Error error) : value_(std::move(error)) {}  // NOLINT(google-explicit-constructor)

  bool ok() const { return value_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() { return std::get<T>(value_); }
  const T& value() const { return std::get<T>(value_); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() { return value(); }
  const T& operator*() const { return value(); }
  const Error& error() const { return std::get<Error>(value_); }

 private:
  std::variant<T, Error> value_;
};

// Result<void>.
class Status {
 public:
  Status() = default;
  Status(Error error) : error_(std::move(error)), ok_(false) {}  // NOLINT
  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const Error& error() const { return error_; }

 private:
  Error error_{ErrorCode::kOk, {}};
  bool ok_ = true;
};

}  // namespace redpacket::domain
