// Async Redis Cluster client on the caller's io_context: slot routing, automatic pipelining,
// MOVED/ASK, reconnect and slot-map refresh on failover, deadlines, EVALSHA with NOSCRIPT fallback
// and batched WAIT for durability. No call ever blocks. Not thread-safe: make one client per
// io_context (per I/O thread) and call it only from that io_context's thread.
#pragma once

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "net/redis/command.h"
#include "net/redis/endpoint.h"
#include "net/redis/reply.h"
#include "net/redis/script.h"

namespace redpacket::net::redis {

struct ClusterClientOptions {
  std::vector<Endpoint> seeds;  // any one reachable node is enough to discover the rest
  std::chrono::milliseconds command_timeout{1000};
  std::chrono::milliseconds connect_timeout{1000};
  std::chrono::milliseconds refresh_interval{100};  // at most one CLUSTER SLOTS per interval
  std::chrono::milliseconds reconnect_backoff_min{50};
  std::chrono::milliseconds reconnect_backoff_max{1000};
  int max_redirects = 16;
};

struct CommandOptions {
  std::chrono::milliseconds timeout{0};  // 0: ClusterClientOptions::command_timeout
  // Sent again (after a refresh, until the deadline) when the connection dies with it in flight.
  // Only for commands that are safe to run twice; others fail with kConnection instead.
  bool idempotent = false;
};

struct ClientCounters {
  std::uint64_t commands = 0;  // issued by callers
  std::uint64_t writes = 0;    // socket writes: one per pipeline batch
  std::uint64_t commands_written = 0;
  std::uint64_t waits_written = 0;  // at most one per batch, however many commands needed it
  std::uint64_t moved = 0;
  std::uint64_t asks = 0;
  std::uint64_t noscript_fallbacks = 0;
  std::uint64_t retries = 0;  // parked until a refresh: node down, CLUSTERDOWN, TRYAGAIN...
  std::uint64_t timeouts = 0;
  std::uint64_t not_replicated = 0;
  std::uint64_t connects = 0;
  std::uint64_t connection_losses = 0;
  std::uint64_t slot_map_refreshes = 0;
};

class ClusterClientImpl;

// Callbacks run on the io_context's thread, never inside the call that issued the command, exactly
// once per command: with the reply, with an error reply (kServer...), or with a client-side error
// (kTimeout, kConnection, kNotReplicated...). MOVED, ASK, NOSCRIPT, CLUSTERDOWN, TRYAGAIN and
// "node down" are handled inside until the command's deadline.
class ClusterClient {
 public:
  // Does no I/O yet. Throws std::invalid_argument without seeds.
  ClusterClient(boost::asio::io_context& io, ClusterClientOptions options);
  // Stop()s the client, so callbacks of outstanding commands run inside the destructor.
  ~ClusterClient();
  ClusterClient(const ClusterClient&) = delete;
  ClusterClient& operator=(const ClusterClient&) = delete;

  // Loads the slot map from the first seed that answers; `done` gets nullopt, or kConnection when
  // no seed answered. Optional: the first command loads the map too.
  void Connect(std::function<void(std::optional<Error>)> done);

  // A command routed by `key` (the key it operates on; all its keys must share the slot).
  void Execute(std::string_view key, std::span<const std::string_view> argv, Callback callback,
               const CommandOptions& options = {});
  void Execute(std::string_view key, std::initializer_list<std::string_view> argv,
               Callback callback, const CommandOptions& options = {});
  // A command for one given node (administration, tests): redirects are not followed, error
  // replies come back as kServer, a node that cannot be reached fails it with kConnection.
  void ExecuteOnNode(const Endpoint& node, std::span<const std::string_view> argv,
                     Callback callback, const CommandOptions& options = {});
  void ExecuteOnNode(const Endpoint& node, std::initializer_list<std::string_view> argv,
                     Callback callback, const CommandOptions& options = {});

  // EVALSHA; on NOSCRIPT the same call is sent once as EVAL (which also caches the script on that
  // node). Keys must share one slot (kCrossSlot otherwise); no keys: any master. `script` must
  // outlive the callback.
  void Eval(const Script& script, std::span<const std::string_view> keys,
            std::span<const std::string_view> args, Callback callback,
            const CommandOptions& options = {});
  // Eval that completes only once its effect reached `min_replicas` replicas: a WAIT follows it
  // on the same connection. All such scripts of one pipeline batch share one WAIT (written after
  // the last of them); with fewer replicas than asked (WAIT timed out) the callback gets
  // kNotReplicated: the script did run on the master, but its effect may be lost on failover.
  // WAIT is not consensus: it proves the replica received the write, not that it will be the one
  // promoted, nor that its AOF reached disk.
  void EvalAndWait(const Script& script, std::span<const std::string_view> keys,
                   std::span<const std::string_view> args, int min_replicas,
                   std::chrono::milliseconds wait_timeout, Callback callback,
                   const CommandOptions& options = {});

  // Closes every connection; outstanding commands complete inside this call with kStopped, later
  // ones fail the same way (posted).
  void Stop();

  // The current view of the cluster (from the last CLUSTER SLOTS and MOVED replies).
  std::vector<Endpoint> Masters() const;
  std::optional<Endpoint> SlotOwner(int slot) const;
  ClientCounters counters() const;

  // Points one slot at another node, as a stale map would, so tests can provoke MOVED.
  void OverrideSlotOwnerForTesting(int slot, const Endpoint& node);

 private:
  std::shared_ptr<ClusterClientImpl> impl_;
};

}  // namespace redpacket::net::redis
