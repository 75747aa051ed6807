// One pipelined TCP connection to one Redis node, on the caller's io_context: commands queued
// while a write is in flight leave together in the next write, replies are matched FIFO, and the
// connection reconnects lazily with exponential backoff. Never blocks; not thread-safe.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "net/redis/command.h"
#include "net/redis/endpoint.h"
#include "net/redis/protocol.h"
#include "net/redis/reply.h"

namespace redpacket::net::redis {

struct ConnectionOptions {
  std::chrono::milliseconds connect_timeout{1000};
  std::chrono::milliseconds backoff_min{50};    // first wait after a failure
  std::chrono::milliseconds backoff_max{1000};  // doubling stops here
};

struct ConnectionStats {
  std::uint64_t writes = 0;            // async_write calls: one per pipeline batch
  std::uint64_t commands_written = 0;  // commands in those batches (ASKING and WAIT not counted)
  std::uint64_t waits_written = 0;     // WAITs appended, at most one per batch
  std::uint64_t connects = 0;          // successful connects
  std::uint64_t connection_losses = 0;
};

class NodeConnection : public std::enable_shared_from_this<NodeConnection> {
 public:
  // Decides what the connection cannot decide alone. Called from the connection's handlers; the
  // owner may call Send or Close on the connection from inside these calls.
  class Owner {
   public:
    virtual ~Owner() = default;
    virtual void OnCommandReply(NodeConnection& connection, const CommandPtr& command,
                                Reply reply) = 0;
    virtual void OnWaitReply(NodeConnection& connection, WaitGroup& group, Reply reply) = 0;
    // The connection died or could not be made. `unsent` never reached the node; `in_flight` were
    // written (or partly) and may or may not have run.
    virtual void OnConnectionLost(NodeConnection& connection, std::vector<CommandPtr> unsent,
                                  std::vector<CommandPtr> in_flight, const Error& error) = 0;
  };

  enum class State { kIdle, kConnecting, kConnected, kBackoff, kClosed };

  NodeConnection(boost::asio::io_context& io, Endpoint endpoint, Owner* owner,
                 ConnectionOptions options);

  // Queues the command for the next write, connecting first when idle. false while the node is in
  // reconnect backoff (or closed): the caller parks the command or fails it.
  bool Send(const CommandPtr& command, bool asking);
  // Detaches from the owner and drops the socket; the owner gets no call afterwards and settles
  // the commands it had sent here itself.
  void Close();

  const Endpoint& endpoint() const { return endpoint_; }
  State state() const { return state_; }
  const ConnectionStats& stats() const { return stats_; }

 private:
  void Connect();
  void OnConnected(std::uint64_t id, const boost::system::error_code& error);
  void StartRead();
  void OnRead(std::uint64_t id, const boost::system::error_code& error, std::size_t size);
  void Dispatch(const ExpectedReply& expected, Reply reply);
  void ScheduleFlush();
  void Flush();
  void OnWritten(std::uint64_t id, const boost::system::error_code& error);
  void Fail(ErrorKind kind, const std::string& message);
  void DropSocket();

  boost::asio::io_context& io_;
  const Endpoint endpoint_;
  Owner* owner_;
  const ConnectionOptions options_;

  boost::asio::ip::tcp::socket socket_;
  boost::asio::ip::tcp::resolver resolver_;
  boost::asio::steady_timer connect_timer_;
  boost::asio::steady_timer backoff_timer_;
  std::chrono::milliseconds backoff_;
  State state_ = State::kIdle;
  // Bumped whenever the socket is dropped, so handlers of an older socket do nothing.
  std::uint64_t connection_id_ = 0;

  std::vector<QueuedCommand> pending_;   // waiting for the next write
  std::deque<ExpectedReply> in_flight_;  // written, reply not read yet; FIFO
  std::string write_buffer_;             // the batch being written
  bool writing_ = false;
  bool flush_scheduled_ = false;
  std::vector<char> read_buffer_;
  ReplyReader reader_;
  ConnectionStats stats_;
};

}  // namespace redpacket::net::redis
