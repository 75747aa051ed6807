// RedisLease: the two scripts and the blocking bridge onto the asynchronous cluster client.
#include "lease/redis/redis_lease.h"

#include <boost/asio/post.hpp>
#include <future>
#include <stdexcept>
#include <string>
#include <utility>

namespace redpacket::lease {
namespace {

namespace asio = boost::asio;
using domain::ErrorCode;
using domain::MakeError;

// KEYS: lease, token counter. ARGV: holder, ttl_ms. Reply: {1, token} held by ARGV[1] (taken or
// renewed), {0, token} held by someone else. The holder and its token live in one value, so
// they expire together; the counter never expires, so tokens never repeat.
constexpr const char* kAcquireScript = R"lua(
local value = redis.call('GET', KEYS[1])
if value then
  local separator = string.find(value, ':', 1, true)
  local token = tonumber(string.sub(value, 1, separator - 1))
  if string.sub(value, separator + 1) ~= ARGV[1] then return {0, token} end
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {1, token}
end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], token .. ':' .. ARGV[1], 'PX', ARGV[2])
return {1, token}
)lua";

// KEYS: lease. ARGV: holder. Reply: 1 released, 0 not held by anyone, -1 held by someone else.
constexpr const char* kReleaseScript = R"lua(
local value = redis.call('GET', KEYS[1])
if not value then return 0 end
local separator = string.find(value, ':', 1, true)
if string.sub(value, separator + 1) ~= ARGV[1] then return -1 end
redis.call('DEL', KEYS[1])
return 1
)lua";

domain::Error Unavailable(const net::redis::Error& error) {
  return MakeError(ErrorCode::kUnavailable, "lease: " + error.ToString());
}

domain::Error Unexpected(const net::redis::Reply& reply) {
  return MakeError(ErrorCode::kInternal, "lease: unexpected reply " + reply.DebugString());
}

}  // namespace

RedisLease::RedisLease(std::vector<net::redis::Endpoint> seeds, std::string name,
                       RedisLeaseOptions options)
    : options_(std::move(options)),
      key_("{" + options_.key_prefix + ":lease}:" + name),
      token_key_(key_ + ":token"),
      acquire_(kAcquireScript),
      release_(kReleaseScript),
      work_(asio::make_work_guard(io_)) {
  if (name.empty()) throw std::invalid_argument("RedisLease: empty lease name");
  net::redis::ClusterClientOptions client_options = options_.client;
  client_options.seeds = std::move(seeds);
  client_ = std::make_unique<net::redis::ClusterClient>(io_, std::move(client_options));
  thread_ = std::thread([this] { io_.run(); });
}

RedisLease::~RedisLease() {
  // The client is not thread-safe: it is destroyed on its own thread, then the thread ends.
  asio::post(io_, [this] { client_.reset(); });
  work_.reset();
  thread_.join();
}

net::redis::Result RedisLease::Call(const net::redis::Script& script,
                                    std::span<const std::string_view> args) {
  auto promise = std::make_shared<std::promise<net::redis::Result>>();
  std::future<net::redis::Result> future = promise->get_future();
  // `args` and the keys outlive the call: this thread waits below until the callback ran.
  asio::post(io_, [this, &script, args, promise] {
    const std::array<std::string_view, 2> keys{key_, token_key_};
    const net::redis::CommandOptions command{.timeout = options_.call_timeout};
    auto done = [promise](net::redis::Result result) { promise->set_value(std::move(result)); };
    if (options_.min_replicas > 0) {
      client_->EvalAndWait(script, keys, args, options_.min_replicas, options_.replication_timeout,
                           std::move(done), command);
    } else {
      client_->Eval(script, keys, args, std::move(done), command);
    }
  });
  // The client completes every command by its deadline; this wait only returns with it.
  return future.get();
}

Result<std::optional<std::uint64_t>> RedisLease::TryAcquire(std::string_view holder,
                                                            std::chrono::milliseconds ttl) {
  if (holder.empty()) return MakeError(ErrorCode::kBadRequest, "empty holder");
  if (ttl <= std::chrono::milliseconds::zero()) {
    return MakeError(ErrorCode::kBadRequest, "lease ttl must be positive");
  }
  const std::string ttl_ms = std::to_string(ttl.count());
  const std::array<std::string_view, 2> args{holder, ttl_ms};
  const net::redis::Result result = Call(acquire_, args);
  if (!result.ok()) return Unavailable(result.error());
  const net::redis::Reply& reply = result.reply();
  if (!reply.IsArray() || reply.array().size() != 2 || !reply.array()[0].IsInteger() ||
      !reply.array()[1].IsInteger() || reply.array()[1].integer() <= 0) {
    return Unexpected(reply);
  }
  if (reply.array()[0].integer() != 1) return std::optional<std::uint64_t>{};
  return std::optional<std::uint64_t>{static_cast<std::uint64_t>(reply.array()[1].integer())};
}

Status RedisLease::Release(std::string_view holder) {
  if (holder.empty()) return MakeError(ErrorCode::kBadRequest, "empty holder");
  const std::array<std::string_view, 1> args{holder};
  const net::redis::Result result = Call(release_, args);
  if (!result.ok()) return Unavailable(result.error());
  const net::redis::Reply& reply = result.reply();
  if (!reply.IsInteger()) return Unexpected(reply);
  if (reply.integer() < 0) {
    return MakeError(ErrorCode::kConflict, "the lease is held by another holder");
  }
  return {};
}

}  // namespace redpacket::lease
