// The cluster client's replies: what node connections report, redirects, NOSCRIPT, lost links.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <string>

#include "net/redis/cluster_client_impl.h"
#include "net/redis/protocol.h"

namespace redpacket::net::redis {

// --- NodeConnection::Owner ---
// Each of these holds `self`: a callback may destroy the ClusterClient, and the rest of the
// call must still find this object alive.

void ClusterClientImpl::OnCommandReply(NodeConnection& connection, const CommandPtr& command,
                                       Reply reply) {
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

void ClusterClientImpl::OnWaitReply(NodeConnection& connection, WaitGroup& group, Reply reply) {
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
      Complete(command, Error{ErrorKind::kNotReplicated,
                              acknowledged < 0 ? "WAIT on " + connection.endpoint().ToString() +
                                                     " failed: " + reply.DebugString()
                                               : "WAIT on " + connection.endpoint().ToString() +
                                                     ": " + std::to_string(acknowledged) + " of " +
                                                     std::to_string(command->min_replicas) +
                                                     " replica(s) acknowledged in time"});
    }
  }
}

void ClusterClientImpl::OnConnectionLost(NodeConnection& /*connection*/,
                                         std::vector<CommandPtr> unsent,
                                         std::vector<CommandPtr> in_flight, const Error& error) {
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

void ClusterClientImpl::HandleErrorReply(NodeConnection& connection, const CommandPtr& command,
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

void ClusterClientImpl::FollowRedirect(NodeConnection& connection, const CommandPtr& command,
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

}  // namespace redpacket::net::redis
