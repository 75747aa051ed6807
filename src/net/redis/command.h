// The client's in-flight command record and pipeline batch assembly: how queued commands become
// one write, and where the single WAIT of a batch goes. Internal to the Redis client (public for
// its unit tests); no I/O, not thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "net/redis/endpoint.h"
#include "net/redis/reply.h"

namespace redpacket::net::redis {

class Script;

using Clock = std::chrono::steady_clock;
using Callback = std::function<void(Result)>;

struct Command {
  // --- set when the command is issued ---
  std::string payload;                 // RESP encoding, kept for retries and redirects
  int slot = -1;                       // -1: no key, any master will do
  std::optional<Endpoint> fixed_node;  // ExecuteOnNode: this node only, redirects not followed
  Clock::time_point deadline;
  Callback callback;
  const Script* script = nullptr;  // payload is EVALSHA of this script: NOSCRIPT -> EVAL
  int min_replicas = 0;            // > 0: completes only after a WAIT saw this many replicas
  std::chrono::milliseconds wait_timeout{0};
  bool idempotent = false;  // may be sent again after a connection died with it in flight

  // --- state while it is processed ---
  std::uint32_t attempt = 0;  // bumped on every send, so a reply to an older send is ignored
  int redirects = 0;
  bool rewritten_as_eval = false;
  bool done = false;                         // the callback has run (or is running)
  std::optional<Reply> reply_awaiting_wait;  // its own reply, held until the batch's WAIT
  std::string last_error;                    // why it was last parked, for the timeout message
  std::size_t deadline_index = kNotQueued;   // position in the client's DeadlineQueue

  static constexpr std::size_t kNotQueued = static_cast<std::size_t>(-1);
};

using CommandPtr = std::shared_ptr<Command>;

// The outstanding commands of a client ordered by deadline: a binary min-heap that records each
// command's position in it, so a command that completes is erased at once (O(log n)) instead of
// lingering until its deadline. It also owns every outstanding command, which is how Stop() finds
// them all.
class DeadlineQueue {
 public:
  void Push(const CommandPtr& command);
  void Erase(Command& command);  // no-op when not queued
  const CommandPtr& Top() const { return heap_.front(); }
  CommandPtr Pop();
  bool empty() const { return heap_.empty(); }
  std::size_t size() const { return heap_.size(); }

 private:
  void Place(std::size_t index, CommandPtr command);
  void SiftUp(std::size_t index);
  void SiftDown(std::size_t index);

  std::vector<CommandPtr> heap_;
};

// Commands of one batch that asked for replication, answered together by the batch's WAIT.
struct WaitGroup {
  struct Member {
    CommandPtr command;
    std::uint32_t attempt = 0;
  };
  int min_replicas = 0;  // the largest of the members'
  std::vector<Member> members;
};

// One reply the connection expects, in the order the requests were written.
struct ExpectedReply {
  enum class Role { kAsking, kCommand, kWait };
  Role role = Role::kCommand;
  CommandPtr command;                     // kAsking, kCommand
  std::uint32_t attempt = 0;              // kCommand: command->attempt when it was written
  std::shared_ptr<WaitGroup> wait_group;  // kWait
};

// A command waiting in a connection's queue for the next write.
struct QueuedCommand {
  CommandPtr command;
  bool asking = false;  // precede it with ASKING (it follows an ASK redirect)
};

// Serializes `queued` into *out and appends to *expected one entry per reply to come. Commands
// already done (timed out while queued) are skipped. When any command needs replication, a single
// "WAIT <max min_replicas> <max timeout>" goes at the end of the batch: WAIT covers every write
// this connection made before it, so one WAIT makes the whole batch durable instead of one round
// trip to the replicas per command, and the commands without durability needs in the same batch
// are not held behind it. Returns how many commands were written.
std::size_t AssembleBatch(const std::vector<QueuedCommand>& queued, std::string* out,
                          std::deque<ExpectedReply>* expected);

}  // namespace redpacket::net::redis
