// The cluster client's private parts, shared by its files: ClusterClientImpl and its helpers.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "net/redis/cluster_client.h"
#include "net/redis/node_connection.h"
#include "net/redis/slot.h"

namespace redpacket::net::redis {
namespace cluster_internal {

// Deadlines are checked by one timer for the whole client rather than one timer per command; it
// fires at the earliest deadline plus this slack, so under load it wakes at most 1/kSlack times a
// second while every timeout is still reported at most kSlack late.
inline constexpr std::chrono::milliseconds kDeadlineSlack{5};

// Runs the callback unless the command already completed; also used when the client is gone.
inline void Finish(const CommandPtr& command, Result result) {
  if (command->done) return;
  command->done = true;
  Callback callback = std::move(command->callback);
  command->reply_awaiting_wait.reset();
  callback(std::move(result));
}

}  // namespace cluster_internal

class ClusterClientImpl : public std::enable_shared_from_this<ClusterClientImpl>,
                          public NodeConnection::Owner {
 public:
  ClusterClientImpl(boost::asio::io_context& io, ClusterClientOptions options)
      : io_(io),
        options_(std::move(options)),
        slot_owners_(kSlotCount, nullptr),
        refresh_timer_(io),
        deadline_timer_(io) {}

  ~ClusterClientImpl() override;

  const ClusterClientOptions& options() const { return options_; }

  void Connect(std::function<void(std::optional<Error>)> done);
  void Submit(const CommandPtr& command);
  void CompleteLater(const CommandPtr& command, Result result);
  void Stop();
  std::vector<Endpoint> Masters() const;
  std::optional<Endpoint> SlotOwner(int slot) const;
  ClientCounters counters() const;
  void OverrideSlotOwner(int slot, const Endpoint& endpoint);

  // --- NodeConnection::Owner (cluster_replies.cc) ---
  void OnCommandReply(NodeConnection& connection, const CommandPtr& command, Reply reply) override;
  void OnWaitReply(NodeConnection& connection, WaitGroup& group, Reply reply) override;
  void OnConnectionLost(NodeConnection& connection, std::vector<CommandPtr> unsent,
                        std::vector<CommandPtr> in_flight, const Error& error) override;

 private:
  // cluster_slot_map.cc: the slot map and its refresh.
  NodeConnection& NodeFor(const Endpoint& endpoint);
  NodeConnection* AnyMaster();
  void RequestRefresh();
  void StartRefresh();
  void TryRefreshFrom(const std::shared_ptr<std::vector<Endpoint>>& candidates, std::size_t index,
                      const std::string& last_error);
  void ApplySlotMap(const std::vector<SlotRange>& ranges);
  void FinishRefresh(std::optional<Error> error);

  // cluster_routing.cc: routing, parking and deadlines.
  void Complete(const CommandPtr& command, Result result);
  void Route(const CommandPtr& command);
  void Park(const CommandPtr& command, std::string reason);
  void TrackDeadline(const CommandPtr& command);
  void ArmDeadlineTimer(Clock::time_point when);
  void OnDeadlineTimer();

  // cluster_replies.cc: error replies and redirects.
  void HandleErrorReply(NodeConnection& connection, const CommandPtr& command,
                        const std::string& text);
  void FollowRedirect(NodeConnection& connection, const CommandPtr& command,
                      const Redirect& redirect, const std::string& text);

  boost::asio::io_context& io_;
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
  boost::asio::steady_timer refresh_timer_;

  DeadlineQueue deadlines_;
  boost::asio::steady_timer deadline_timer_;
  Clock::time_point deadline_timer_at_ = Clock::time_point::max();

  ClientCounters counters_;  // the per-connection ones are summed in counters()
};

}  // namespace redpacket::net::redis
