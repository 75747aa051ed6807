// The cluster client's slot map: which node owns which slot, refreshed with CLUSTER SLOTS.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <string>

#include "net/redis/cluster_client_impl.h"
#include "net/redis/protocol.h"
#include "net/redis/slot.h"

namespace redpacket::net::redis {

namespace asio = boost::asio;

std::vector<Endpoint> ClusterClientImpl::Masters() const {
  std::vector<Endpoint> masters;
  for (const NodeConnection* node : masters_) masters.push_back(node->endpoint());
  return masters;
}

std::optional<Endpoint> ClusterClientImpl::SlotOwner(int slot) const {
  if (slot < 0 || slot >= kSlotCount || slot_owners_[slot] == nullptr) return std::nullopt;
  return slot_owners_[slot]->endpoint();
}

void ClusterClientImpl::OverrideSlotOwner(int slot, const Endpoint& endpoint) {
  slot_owners_.at(static_cast<std::size_t>(slot)) = &NodeFor(endpoint);
}

NodeConnection& ClusterClientImpl::NodeFor(const Endpoint& endpoint) {
  auto [it, inserted] = nodes_.try_emplace(endpoint.ToString());
  if (inserted) {
    it->second = std::make_shared<NodeConnection>(
        io_, endpoint, this,
        ConnectionOptions{options_.connect_timeout, options_.reconnect_backoff_min,
                          options_.reconnect_backoff_max});
  }
  return *it->second;
}

NodeConnection* ClusterClientImpl::AnyMaster() {
  for (std::size_t i = 0; i < masters_.size(); ++i) {
    NodeConnection* node = masters_[next_master_++ % masters_.size()];
    if (node->state() != NodeConnection::State::kBackoff) return node;
  }
  return nullptr;
}

void ClusterClientImpl::RequestRefresh() {
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

void ClusterClientImpl::StartRefresh() {
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

void ClusterClientImpl::TryRefreshFrom(const std::shared_ptr<std::vector<Endpoint>>& candidates,
                                       std::size_t index, const std::string& last_error) {
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

void ClusterClientImpl::ApplySlotMap(const std::vector<SlotRange>& ranges) {
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

void ClusterClientImpl::FinishRefresh(std::optional<Error> error) {
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

}  // namespace redpacket::net::redis
