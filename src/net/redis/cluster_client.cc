// The cluster client: routing by slot over pipelined node connections, redirects, parking and
// retrying commands across failovers until their deadline, NOSCRIPT fallback, batched WAIT.
// This file: the public ClusterClient, and the client's connect, stop and counters.
#include "net/redis/cluster_client.h"

#include <algorithm>
#include <boost/asio/post.hpp>
#include <boost/container/small_vector.hpp>
#include <stdexcept>
#include <string>

#include "net/redis/cluster_client_impl.h"
#include "net/redis/protocol.h"
#include "net/redis/slot.h"

namespace redpacket::net::redis {

namespace asio = boost::asio;

namespace {

using cluster_internal::Finish;

}  // namespace

ClusterClientImpl::~ClusterClientImpl() {
  for (auto& [name, node] : nodes_) node->Close();
}

void ClusterClientImpl::Connect(std::function<void(std::optional<Error>)> done) {
  if (stopped_) {
    asio::post(io_, [done = std::move(done)] { done(Error{ErrorKind::kStopped, "stopped"}); });
    return;
  }
  if (have_slot_map_) {
    asio::post(io_, [done = std::move(done)] { done(std::nullopt); });
    return;
  }
  connect_waiters_.push_back(std::move(done));
  RequestRefresh();
}

void ClusterClientImpl::Stop() {
  if (stopped_) return;
  stopped_ = true;
  // Every command that has not completed is in the deadline queue.
  std::vector<CommandPtr> outstanding;
  while (!deadlines_.empty()) outstanding.push_back(deadlines_.Pop());
  for (auto& [name, node] : nodes_) node->Close();
  parked_.clear();
  deadline_timer_.cancel();
  refresh_timer_.cancel();
  auto waiters = std::move(connect_waiters_);
  connect_waiters_.clear();
  for (const CommandPtr& command : outstanding) {
    Finish(command, Error{ErrorKind::kStopped, "the Redis client was stopped"});
  }
  for (auto& waiter : waiters) waiter(Error{ErrorKind::kStopped, "the Redis client was stopped"});
}

ClientCounters ClusterClientImpl::counters() const {
  ClientCounters counters = counters_;
  for (const auto& [name, node] : nodes_) {
    const ConnectionStats& stats = node->stats();
    counters.writes += stats.writes;
    counters.commands_written += stats.commands_written;
    counters.waits_written += stats.waits_written;
    counters.connects += stats.connects;
    counters.connection_losses += stats.connection_losses;
  }
  return counters;
}

namespace {

std::span<const std::string_view> AsSpan(std::initializer_list<std::string_view> list) {
  return {list.begin(), list.size()};
}

}  // namespace

ClusterClient::ClusterClient(asio::io_context& io, ClusterClientOptions options) {
  if (options.seeds.empty()) throw std::invalid_argument("the Redis client needs a seed node");
  impl_ = std::make_shared<ClusterClientImpl>(io, std::move(options));
}

ClusterClient::~ClusterClient() { impl_->Stop(); }

void ClusterClient::Connect(std::function<void(std::optional<Error>)> done) {
  impl_->Connect(std::move(done));
}

namespace {

CommandPtr NewCommand(const ClusterClientOptions& client_options, const CommandOptions& options,
                      Callback callback) {
  auto command = std::make_shared<Command>();
  command->deadline = Clock::now() + (options.timeout.count() > 0 ? options.timeout
                                                                  : client_options.command_timeout);
  command->callback = std::move(callback);
  command->idempotent = options.idempotent;
  return command;
}

}  // namespace

void ClusterClient::Execute(std::string_view key, std::span<const std::string_view> argv,
                            Callback callback, const CommandOptions& options) {
  CommandPtr command = NewCommand(impl_->options(), options, std::move(callback));
  command->payload = EncodeCommand(argv);
  command->slot = KeySlot(key);
  impl_->Submit(command);
}

void ClusterClient::Execute(std::string_view key, std::initializer_list<std::string_view> argv,
                            Callback callback, const CommandOptions& options) {
  Execute(key, AsSpan(argv), std::move(callback), options);
}

void ClusterClient::ExecuteOnNode(const Endpoint& node, std::span<const std::string_view> argv,
                                  Callback callback, const CommandOptions& options) {
  CommandPtr command = NewCommand(impl_->options(), options, std::move(callback));
  command->payload = EncodeCommand(argv);
  command->fixed_node = node;
  impl_->Submit(command);
}

void ClusterClient::ExecuteOnNode(const Endpoint& node,
                                  std::initializer_list<std::string_view> argv, Callback callback,
                                  const CommandOptions& options) {
  ExecuteOnNode(node, AsSpan(argv), std::move(callback), options);
}

void ClusterClient::Eval(const Script& script, std::span<const std::string_view> keys,
                         std::span<const std::string_view> args, Callback callback,
                         const CommandOptions& options) {
  EvalAndWait(script, keys, args, 0, std::chrono::milliseconds{0}, std::move(callback), options);
}

void ClusterClient::EvalAndWait(const Script& script, std::span<const std::string_view> keys,
                                std::span<const std::string_view> args, int min_replicas,
                                std::chrono::milliseconds wait_timeout, Callback callback,
                                const CommandOptions& options) {
  CommandPtr command = NewCommand(impl_->options(), options, std::move(callback));
  for (const std::string_view key : keys) {
    const int slot = KeySlot(key);
    if (command->slot >= 0 && slot != command->slot) {
      impl_->CompleteLater(
          command, Error{ErrorKind::kCrossSlot, "the keys of a script must share one hash slot"});
      return;
    }
    command->slot = slot;
  }
  const std::string key_count = std::to_string(keys.size());
  boost::container::small_vector<std::string_view, 16> argv;
  argv.reserve(3 + keys.size() + args.size());
  argv.push_back("EVALSHA");
  argv.push_back(script.sha1());
  argv.push_back(key_count);
  argv.insert(argv.end(), keys.begin(), keys.end());
  argv.insert(argv.end(), args.begin(), args.end());
  command->payload = EncodeCommand(std::span<const std::string_view>(argv.data(), argv.size()));
  command->script = &script;
  command->min_replicas = std::max(0, min_replicas);
  command->wait_timeout = wait_timeout;
  impl_->Submit(command);
}

void ClusterClient::Stop() { impl_->Stop(); }

std::vector<Endpoint> ClusterClient::Masters() const { return impl_->Masters(); }

std::optional<Endpoint> ClusterClient::SlotOwner(int slot) const { return impl_->SlotOwner(slot); }

ClientCounters ClusterClient::counters() const { return impl_->counters(); }

void ClusterClient::OverrideSlotOwnerForTesting(int slot, const Endpoint& node) {
  impl_->OverrideSlotOwner(slot, node);
}

}  // namespace redpacket::net::redis
