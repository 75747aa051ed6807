// The cluster client: routing by slot over pipelined node connections, redirects, parking and
// retrying commands across failovers until their deadline, NOSCRIPT fallback, batched WAIT.
#include "net/redis/cluster_client.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/container/small_vector.hpp>
#include <stdexcept>
#include <string>
#include <unordered_map>

#include "net/redis/node_connection.h"
#include "net/redis/protocol.h"
#include "net/redis/slot.h"

namespace redpacket::net::redis {

namespace asio = boost::asio;

namespace {

// Deadlines are checked by one timer for the whole client rather than one timer per command; it
// fires at the earliest deadline plus this slack, so under load it wakes at most 1/kSlack times a
// second while every timeout is still reported at most kSlack late.
constexpr std::chrono::milliseconds kDeadlineSlack{5};

// Runs the callback unless the command already completed; also used when the client is gone.
void Finish(const CommandPtr& command, Result result) {
  if (command->done) return;
  command->done = true;
  Callback callback = std::move(command->callback);
  command->reply_awaiting_wait.reset();
  callback(std::move(result));
}

}  // namespace

class ClusterClientImpl : public std::enable_shared_from_this<ClusterClientImpl>,
                          public NodeConnection::Owner {
 public:
  ClusterClientImpl(asio::io_context& io, ClusterClientOptions options)
      : io_(io),
        options_(std::move(options)),
        slot_owners_(kSlotCount, nullptr),
        refresh_timer_(io),
        deadline_timer_(io) {}

  ~ClusterClientImpl() override {
    for (auto& [name, node] : nodes_) node->Close();
  }

  const ClusterClientOptions& options() const { return options_; }

  void Connect(std::function<void(std::optional<Error>)> done) {
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

  // Takes a fully built command: registers its deadline and routes it.
  void Submit(const CommandPtr& command) {
    if (stopped_) {
      CompleteLater(command, Error{ErrorKind::kStopped, "the Redis client is stopped"});
      return;
    }
    ++counters_.commands;
    TrackDeadline(command);
    Route(command);
  }

  void CompleteLater(const CommandPtr& command, Result result) {
    asio::post(io_, [weak = weak_from_this(), command, result = std::move(result)]() mutable {
      if (auto self = weak.lock()) {
        self->Complete(command, std::move(result));
      } else {
        Finish(command, std::move(result));
      }
    });
  }

  void Stop() {
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

  std::vector<Endpoint> Masters() const {
    std::vector<Endpoint> masters;
    for (const NodeConnection* node : masters_) masters.push_back(node->endpoint());
    return masters;
  }

  std::optional<Endpoint> SlotOwner(int slot) const {
    if (slot < 0 || slot >= kSlotCount || slot_owners_[slot] == nullptr) return std::nullopt;
    return slot_owners_[slot]->endpoint();
  }

  ClientCounters counters() const {
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

  void OverrideSlotOwner(int slot, const Endpoint& endpoint) {
    slot_owners_.at(static_cast<std::size_t>(slot)) = &NodeFor(endpoint);
  }

  // --- NodeConnection::Owner ---
  // Each of these holds `self`: a callback may destroy the ClusterClient, and the rest of the
  // call must still find this object alive.

  void OnCommandReply(NodeConnection& connection, const CommandPtr& command, Reply reply) override {
    const auto self = shared_from_this();
    if (reply.IsError()) {
      HandleErrorReply(connection, command, reply.error());
      return;
    }
    if (command->min_replicas > 0) {
      command->reply_awaiting_wait = std::move(reply);  // completes when the batch's WAIT answers
      return;
    }
    Complete(command, std::move(reply));
  }

  void OnWaitReply(NodeConnection& connection, WaitGroup& group, Reply reply) override {
    const auto self = shared_from_this();
    const std::int64_t acknowledged = reply.IsInteger() ? reply.integer() : -1;
    for (WaitGroup::Member& member : group.members) {
      const CommandPtr& command = member.command;
      if (command->done || command->attempt != member.attempt || !command->reply_awaiting_wait) {
        continue;  // failed on its own, or redirected and now waiting elsewhere
      }
      if (acknowledged >= command->min_replicas) {
        Reply own_reply = std::move(*command->reply_awaiting_wait);
        Complete(command, std::move(own_reply));
      } else {
        ++counters_.not_replicated;
        Complete(command,
                 Error{ErrorKind::kNotReplicated,
                       acknowledged < 0 ? "WAIT on " + connection.endpoint().ToString() +
                                              " failed: " + reply.DebugString()
                                        : "WAIT on " + connection.endpoint().ToString() + ": " +
                                              std::to_string(acknowledged) + " of " +
                                              std::to_string(command->min_replicas) +
                                              " replica(s) acknowledged in time"});
      }
    }
  }

  void OnConnectionLost(NodeConnection& /*connection*/, std::vector<CommandPtr> unsent,
                        std::vector<CommandPtr> in_flight, const Error& error) override {
    const auto self = shared_from_this();
    spdlog::debug("redis: {} ({} unsent, {} in flight)", error.message, unsent.size(),
                  in_flight.size());
    for (const CommandPtr& command : unsent) {
      if (command->fixed_node) {
        Complete(command, error);
      } else {
        Park(command, error.message);  // never reached the node: safe to send again
      }
    }
    for (const CommandPtr& command : in_flight) {
      if (!command->fixed_node && command->idempotent) {
        Park(command, error.message);
      } else {
        Complete(command, Error{error.kind, error.message + " (the command may have run)"});
      }
    }
    // A dead master is the usual reason: its replica is about to be promoted.
    RequestRefresh();
  }

 private:
  NodeConnection& NodeFor(const Endpoint& endpoint) {
    auto [it, inserted] = nodes_.try_emplace(endpoint.ToString());
    if (inserted) {
      it->second = std::make_shared<NodeConnection>(
          io_, endpoint, this,
          ConnectionOptions{options_.connect_timeout, options_.reconnect_backoff_min,
                            options_.reconnect_backoff_max});
    }
    return *it->second;
  }

  NodeConnection* AnyMaster() {
    for (std::size_t i = 0; i < masters_.size(); ++i) {
      NodeConnection* node = masters_[next_master_++ % masters_.size()];
      if (node->state() != NodeConnection::State::kBackoff) return node;
    }
    return nullptr;
  }

  void Complete(const CommandPtr& command, Result result) {
    if (command->done) return;
    deadlines_.Erase(*command);
    if (!result.ok() && result.error().kind == ErrorKind::kTimeout) ++counters_.timeouts;
    Finish(command, std::move(result));
  }

  void Route(const CommandPtr& command) {
    if (command->done) return;
    if (stopped_) {
      Complete(command, Error{ErrorKind::kStopped, "the Redis client was stopped"});
      return;
    }
    if (command->fixed_node) {
      NodeConnection& node = NodeFor(*command->fixed_node);
      if (!node.Send(command, false)) {
        CompleteLater(command, Error{ErrorKind::kConnection,
                                     node.endpoint().ToString() + " is down (reconnecting)"});
      }
      return;
    }
    NodeConnection* node = nullptr;
    if (have_slot_map_) node = command->slot >= 0 ? slot_owners_[command->slot] : AnyMaster();
    if (node == nullptr) {
      Park(command, have_slot_map_ ? "slot " + std::to_string(command->slot) + " has no master"
                                   : "the slot map is not loaded");
      return;
    }
    if (!node->Send(command, false)) Park(command, node->endpoint().ToString() + " is down");
  }

  // Holds a command that cannot be sent now until the next slot-map refresh, then routes it
  // again; the deadline bounds how long this goes on.
  void Park(const CommandPtr& command, std::string reason) {
    if (command->done) return;
    if (stopped_) {
      Complete(command, Error{ErrorKind::kStopped, "the Redis client was stopped"});
      return;
    }
    ++counters_.retries;
    command->last_error = std::move(reason);
    parked_.push_back(command);
    // A refresh already running reroutes every parked command when it ends.
    if (!refreshing_) RequestRefresh();
  }

  void HandleErrorReply(NodeConnection& connection, const CommandPtr& command,
                        const std::string& text) {
    if (!command->fixed_node) {
      if (std::optional<Redirect> redirect = ParseRedirect(text)) {
        FollowRedirect(connection, command, *redirect, text);
        return;
      }
    }
    if (command->script != nullptr && !command->rewritten_as_eval && text.starts_with("NOSCRIPT")) {
      // This node lacks the script (never loaded, SCRIPT FLUSH, a fresh replica promoted): EVAL
      // runs it and caches it there, so the next EVALSHA of any caller succeeds.
      if (auto eval = RewriteEvalShaAsEval(command->payload, command->script->source())) {
        command->payload = std::move(*eval);
        command->rewritten_as_eval = true;
        ++counters_.noscript_fallbacks;
        Route(command);
        return;
      }
    }
    const ErrorKind kind = ClassifyServerError(text);
    if (!command->fixed_node && (kind == ErrorKind::kTryAgain || kind == ErrorKind::kClusterDown)) {
      Park(command, text);  // the command did not run; a refresh or a little time will fix it
      return;
    }
    Complete(command, Error{kind, text});
  }

  void FollowRedirect(NodeConnection& connection, const CommandPtr& command,
                      const Redirect& redirect, const std::string& text) {
    if (++command->redirects > options_.max_redirects) {
      Complete(command, Error{ErrorKind::kServer, "too many redirects, the last: " + text});
      return;
    }
    Endpoint target = redirect.endpoint;
    if (target.host.empty()) target.host = connection.endpoint().host;
    NodeConnection& node = NodeFor(target);
    if (redirect.kind == Redirect::Kind::kMoved) {
      ++counters_.moved;
      // The slot has a new owner for good: fix this slot now so the retry and the commands behind
      // it go straight there, and refresh the whole map, since a resharding or failover rarely
      // moves just one slot.
      slot_owners_[redirect.slot] = &node;
      if (std::find(masters_.begin(), masters_.end(), &node) == masters_.end()) {
        masters_.push_back(&node);
      }
      RequestRefresh();
      Route(command);
      return;
    }
    // ASK: only this command goes to the importing node, preceded by ASKING; the slot map stays.
    ++counters_.asks;
    if (!node.Send(command, /*asking=*/true)) Park(command, target.ToString() + " is down");
  }

  void RequestRefresh() {
    if (stopped_) return;
    if (refreshing_) {
      refresh_again_ = true;
      return;
    }
    if (refresh_timer_armed_) return;
    const Clock::time_point due = last_refresh_start_ + options_.refresh_interval;
    if (Clock::now() >= due) {
      StartRefresh();
      return;
    }
    refresh_timer_armed_ = true;
    refresh_timer_.expires_at(due);
    refresh_timer_.async_wait([weak = weak_from_this()](const boost::system::error_code& error) {
      auto self = weak.lock();
      if (error || !self) return;
      self->refresh_timer_armed_ = false;
      self->StartRefresh();
    });
  }

  void StartRefresh() {
    if (stopped_ || refreshing_) return;
    refreshing_ = true;
    refresh_again_ = false;
    last_refresh_start_ = Clock::now();
    // Connected nodes first (no connect needed, and a dead master is not connected), then the
    // other known nodes, then the seeds.
    auto candidates = std::make_shared<std::vector<Endpoint>>();
    auto add = [&](const Endpoint& endpoint) {
      if (std::find(candidates->begin(), candidates->end(), endpoint) == candidates->end()) {
        candidates->push_back(endpoint);
      }
    };
    for (const auto& [name, node] : nodes_) {
      if (node->state() == NodeConnection::State::kConnected) add(node->endpoint());
    }
    for (const auto& [name, node] : nodes_) {
      if (node->state() != NodeConnection::State::kBackoff) add(node->endpoint());
    }
    for (const Endpoint& seed : options_.seeds) add(seed);
    TryRefreshFrom(candidates, 0, "no seed nodes configured");
  }

  void TryRefreshFrom(const std::shared_ptr<std::vector<Endpoint>>& candidates, std::size_t index,
                      const std::string& last_error) {
    if (stopped_) return;
    if (index >= candidates->size()) {
      FinishRefresh(Error{ErrorKind::kConnection,
                          "no Redis node answered CLUSTER SLOTS; last error: " + last_error});
      return;
    }
    static const std::string kClusterSlots = EncodeCommand({"CLUSTER", "SLOTS"});
    auto command = std::make_shared<Command>();
    command->payload = kClusterSlots;
    command->fixed_node = (*candidates)[index];
    command->deadline = Clock::now() + options_.command_timeout;
    command->callback = [weak = weak_from_this(), candidates, index](Result result) {
      auto self = weak.lock();
      if (!self || self->stopped_) return;
      const Endpoint& node = (*candidates)[index];
      std::string error;
      if (!result.ok()) {
        error = result.error().ToString();
      } else if (auto ranges = ParseClusterSlots(result.reply(), node.host); !ranges) {
        error = "malformed CLUSTER SLOTS reply " + result.reply().DebugString();
      } else if (ranges->empty()) {
        error = "no slots assigned yet";
      } else {
        self->ApplySlotMap(*ranges);
        return;
      }
      self->TryRefreshFrom(candidates, index + 1, node.ToString() + ": " + error);
    };
    TrackDeadline(command);
    Route(command);
  }

  void ApplySlotMap(const std::vector<SlotRange>& ranges) {
    std::fill(slot_owners_.begin(), slot_owners_.end(), nullptr);
    masters_.clear();
    for (const SlotRange& range : ranges) {
      NodeConnection* node = &NodeFor(range.master);
      std::fill(slot_owners_.begin() + range.first, slot_owners_.begin() + range.last + 1, node);
      if (std::find(masters_.begin(), masters_.end(), node) == masters_.end()) {
        masters_.push_back(node);
      }
    }
    have_slot_map_ = true;
    ++counters_.slot_map_refreshes;
    FinishRefresh(std::nullopt);
  }

  void FinishRefresh(std::optional<Error> error) {
    refreshing_ = false;
    if (error) spdlog::warn("redis: {}", error->message);
    if (!error || !have_slot_map_) {
      auto waiters = std::move(connect_waiters_);
      connect_waiters_.clear();
      for (auto& waiter : waiters) waiter(error);
    }
    if (!error) {
      std::vector<CommandPtr> parked = std::move(parked_);
      parked_.clear();
      for (const CommandPtr& command : parked) Route(command);
    }
    if (refresh_again_ || !parked_.empty()) RequestRefresh();
  }

  void TrackDeadline(const CommandPtr& command) {
    deadlines_.Push(command);
    const Clock::time_point wake = command->deadline + kDeadlineSlack;
    if (wake < deadline_timer_at_) ArmDeadlineTimer(wake);
  }

  void ArmDeadlineTimer(Clock::time_point when) {
    deadline_timer_at_ = when;
    deadline_timer_.expires_at(when);
    deadline_timer_.async_wait([weak = weak_from_this()](const boost::system::error_code& error) {
      if (error) return;
      if (auto self = weak.lock()) self->OnDeadlineTimer();
    });
  }

  void OnDeadlineTimer() {
    deadline_timer_at_ = Clock::time_point::max();
    const Clock::time_point now = Clock::now();
    while (!stopped_ && !deadlines_.empty() && deadlines_.Top()->deadline <= now) {
      const CommandPtr command = deadlines_.Pop();
      Complete(command, Error{ErrorKind::kTimeout,
                              command->last_error.empty()
                                  ? "no reply before the deadline"
                                  : "no reply before the deadline; last: " + command->last_error});
    }
    if (!stopped_ && !deadlines_.empty()) {
      ArmDeadlineTimer(deadlines_.Top()->deadline + kDeadlineSlack);
    }
  }

  asio::io_context& io_;
  const ClusterClientOptions options_;
  bool stopped_ = false;

  std::unordered_map<std::string, std::shared_ptr<NodeConnection>> nodes_;  // never shrinks
  std::vector<NodeConnection*> slot_owners_;                                // by slot
  std::vector<NodeConnection*> masters_;
  std::size_t next_master_ = 0;
  bool have_slot_map_ = false;
  std::vector<CommandPtr> parked_;
  std::vector<std::function<void(std::optional<Error>)>> connect_waiters_;

  bool refreshing_ = false;
  bool refresh_again_ = false;  // asked for while one was running
  bool refresh_timer_armed_ = false;
  Clock::time_point last_refresh_start_{};
  asio::steady_timer refresh_timer_;

  DeadlineQueue deadlines_;
  asio::steady_timer deadline_timer_;
  Clock::time_point deadline_timer_at_ = Clock::time_point::max();

  ClientCounters counters_;  // the per-connection ones are summed in counters()
};

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
