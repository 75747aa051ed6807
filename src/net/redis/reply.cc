// Reply conversion from hiredis, error classification and redirect parsing.
#include "net/redis/reply.h"

#include <hiredis/hiredis.h>

#include <charconv>

namespace redpacket::net::redis {

Reply Reply::FromHiredis(const redisReply& reply) {
  switch (reply.type) {
    case REDIS_REPLY_STRING:
      return Reply(std::string(reply.str, reply.len));
    case REDIS_REPLY_STATUS:
      return Reply(StatusReply{std::string(reply.str, reply.len)});
    case REDIS_REPLY_ERROR:
      return Reply(ErrorReply{std::string(reply.str, reply.len)});
    case REDIS_REPLY_INTEGER:
      return Reply(static_cast<std::int64_t>(reply.integer));
    case REDIS_REPLY_ARRAY: {
      Array elements;
      elements.reserve(reply.elements);
      for (std::size_t i = 0; i < reply.elements; ++i) {
        elements.push_back(FromHiredis(*reply.element[i]));
      }
      return Reply(std::move(elements));
    }
    case REDIS_REPLY_NIL:
    default:
      return Reply();
  }
}

std::string Reply::DebugString() const {
  struct Render {
    std::string operator()(const Nil&) const { return "(nil)"; }
    std::string operator()(std::int64_t value) const {
      return "(integer) " + std::to_string(value);
    }
    std::string operator()(const std::string& value) const { return "\"" + value + "\""; }
    std::string operator()(const StatusReply& value) const { return value.text; }
    std::string operator()(const ErrorReply& value) const { return "(error) " + value.text; }
    std::string operator()(const Array& value) const {
      std::string out = "[";
      for (std::size_t i = 0; i < value.size(); ++i) {
        if (i > 0) out += ", ";
        out += value[i].DebugString();
      }
      return out + "]";
    }
  };
  return std::visit(Render{}, value_);
}

const char* ErrorKindName(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kConnection:
      return "connection";
    case ErrorKind::kTimeout:
      return "timeout";
    case ErrorKind::kTryAgain:
      return "try_again";
    case ErrorKind::kClusterDown:
      return "cluster_down";
    case ErrorKind::kNotReplicated:
      return "not_replicated";
    case ErrorKind::kServer:
      return "server";
    case ErrorKind::kCrossSlot:
      return "cross_slot";
    case ErrorKind::kProtocol:
      return "protocol";
    case ErrorKind::kStopped:
      return "stopped";
  }
  return "unknown";
}

bool IsRetryable(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kConnection:
    case ErrorKind::kTimeout:
    case ErrorKind::kTryAgain:
    case ErrorKind::kClusterDown:
    case ErrorKind::kNotReplicated:
      return true;
    case ErrorKind::kServer:
    case ErrorKind::kCrossSlot:
    case ErrorKind::kProtocol:
    case ErrorKind::kStopped:
      return false;
  }
  return false;
}

std::string Error::ToString() const { return std::string(ErrorKindName(kind)) + ": " + message; }

namespace {

// The first word of an error reply ("CLUSTERDOWN The cluster is down" -> "CLUSTERDOWN").
std::string_view ErrorCode(std::string_view error_text) {
  return error_text.substr(0, error_text.find(' '));
}

}  // namespace

ErrorKind ClassifyServerError(std::string_view error_text) {
  const std::string_view code = ErrorCode(error_text);
  if (code == "TRYAGAIN" || code == "BUSY") return ErrorKind::kTryAgain;
  // All of these say the command did not run, and that a topology change (failover, a replica
  // finishing its load) will fix it; so retrying is safe even for non-idempotent commands.
  if (code == "CLUSTERDOWN" || code == "MASTERDOWN" || code == "LOADING" || code == "READONLY") {
    return ErrorKind::kClusterDown;
  }
  if (code == "CROSSSLOT") return ErrorKind::kCrossSlot;
  return ErrorKind::kServer;
}

std::optional<Redirect> ParseRedirect(std::string_view error_text) {
  Redirect redirect;
  const std::string_view code = ErrorCode(error_text);
  if (code == "MOVED") {
    redirect.kind = Redirect::Kind::kMoved;
  } else if (code == "ASK") {
    redirect.kind = Redirect::Kind::kAsk;
  } else {
    return std::nullopt;
  }
  std::string_view rest = error_text.substr(code.size());
  if (rest.empty() || rest.front() != ' ') return std::nullopt;
  rest.remove_prefix(1);
  const auto space = rest.find(' ');
  if (space == std::string_view::npos) return std::nullopt;
  const std::string_view slot_text = rest.substr(0, space);
  const auto [end, error] =
      std::from_chars(slot_text.data(), slot_text.data() + slot_text.size(), redirect.slot);
  if (error != std::errc{} || end != slot_text.data() + slot_text.size() || redirect.slot < 0 ||
      redirect.slot >= 16384) {
    return std::nullopt;
  }
  const std::string_view address = rest.substr(space + 1);
  if (!address.empty() && address.front() == ':') {  // ":6381": same host as the sender
    auto endpoint = ParseEndpoint("_" + std::string(address));
    if (!endpoint) return std::nullopt;
    redirect.endpoint = Endpoint{"", endpoint->port};
    return redirect;
  }
  auto endpoint = ParseEndpoint(address);
  if (!endpoint) return std::nullopt;
  redirect.endpoint = std::move(*endpoint);
  return redirect;
}

}  // namespace redpacket::net::redis
