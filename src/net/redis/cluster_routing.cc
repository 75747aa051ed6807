// The cluster client's routing: commands to their slot's node, parking, deadlines.
#include <boost/asio/post.hpp>
#include <string>

#include "net/redis/cluster_client_impl.h"

namespace redpacket::net::redis {

namespace asio = boost::asio;

namespace {

using cluster_internal::Finish;
using cluster_internal::kDeadlineSlack;

}  // namespace

// Takes a fully built command: registers its deadline and routes it.
void ClusterClientImpl::Submit(const CommandPtr& command) {
  if (stopped_) {
    CompleteLater(command, Error{ErrorKind::kStopped, "the Redis client is stopped"});
    return;
  }
  ++counters_.commands;
  TrackDeadline(command);
  Route(command);
}

void ClusterClientImpl::CompleteLater(const CommandPtr& command, Result result) {
  asio::post(io_, [weak = weak_from_this(), command, result = std::move(result)]() mutable {
    if (auto self = weak.lock()) {
      self->Complete(command, std::move(result));
    } else {
      Finish(command, std::move(result));
    }
  });
}

void ClusterClientImpl::Complete(const CommandPtr& command, Result result) {
  if (command->done) return;
  deadlines_.Erase(*command);
  if (!result.ok() && result.error().kind == ErrorKind::kTimeout) ++counters_.timeouts;
  Finish(command, std::move(result));
}

void ClusterClientImpl::Route(const CommandPtr& command) {
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
void ClusterClientImpl::Park(const CommandPtr& command, std::string reason) {
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

void ClusterClientImpl::TrackDeadline(const CommandPtr& command) {
  deadlines_.Push(command);
  const Clock::time_point wake = command->deadline + kDeadlineSlack;
  if (wake < deadline_timer_at_) ArmDeadlineTimer(wake);
}

void ClusterClientImpl::ArmDeadlineTimer(Clock::time_point when) {
  deadline_timer_at_ = when;
  deadline_timer_.expires_at(when);
  deadline_timer_.async_wait([weak = weak_from_this()](const boost::system::error_code& error) {
    if (error) return;
    if (auto self = weak.lock()) self->OnDeadlineTimer();
  });
}

void ClusterClientImpl::OnDeadlineTimer() {
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

}  // namespace redpacket::net::redis
