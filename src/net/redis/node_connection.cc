// Pipelined node connection: batching writes, FIFO reply matching, lazy reconnect with backoff.
#include "net/redis/node_connection.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>

namespace redpacket::net::redis {
namespace {

namespace asio = boost::asio;
using boost::asio::ip::tcp;

constexpr std::size_t kReadBufferSize = std::size_t{64} * 1024;

}  // namespace

NodeConnection::NodeConnection(asio::io_context& io, Endpoint endpoint, Owner* owner,
                               ConnectionOptions options)
    : io_(io),
      endpoint_(std::move(endpoint)),
      owner_(owner),
      options_(options),
      socket_(io),
      resolver_(io),
      connect_timer_(io),
      backoff_timer_(io),
      backoff_(options.backoff_min),
      read_buffer_(kReadBufferSize) {}

bool NodeConnection::Send(const CommandPtr& command, bool asking) {
  if (state_ == State::kBackoff || state_ == State::kClosed) return false;
  ++command->attempt;
  command->reply_awaiting_wait.reset();
  pending_.push_back({command, asking});
  if (state_ == State::kIdle) {
    Connect();
  } else if (state_ == State::kConnected) {
    ScheduleFlush();
  }
  return true;
}

void NodeConnection::Close() {
  owner_ = nullptr;
  state_ = State::kClosed;
  DropSocket();
  backoff_timer_.cancel();
  pending_.clear();
  in_flight_.clear();
}

void NodeConnection::DropSocket() {
  ++connection_id_;
  boost::system::error_code ignored;
  socket_.close(ignored);
  connect_timer_.cancel();
  resolver_.cancel();
  writing_ = false;
}

void NodeConnection::Connect() {
  state_ = State::kConnecting;
  const std::uint64_t id = ++connection_id_;
  auto self = shared_from_this();
  connect_timer_.expires_after(options_.connect_timeout);
  connect_timer_.async_wait([self, id](const boost::system::error_code& error) {
    if (error || id != self->connection_id_ || self->state_ != State::kConnecting) return;
    self->Fail(ErrorKind::kConnection, "connect to " + self->endpoint_.ToString() + " timed out");
  });
  boost::system::error_code not_an_address;
  const asio::ip::address address = asio::ip::make_address(endpoint_.host, not_an_address);
  if (!not_an_address) {
    socket_.async_connect(
        tcp::endpoint(address, endpoint_.port),
        [self, id](const boost::system::error_code& error) { self->OnConnected(id, error); });
    return;
  }
  resolver_.async_resolve(endpoint_.host, std::to_string(endpoint_.port),
                          [self, id](const boost::system::error_code& error,
                                     const tcp::resolver::results_type& results) {
                            if (id != self->connection_id_) return;
                            if (error) {
                              self->OnConnected(id, error);
                              return;
                            }
                            asio::async_connect(
                                self->socket_, results,
                                [self, id](const boost::system::error_code& error,
                                           const tcp::endpoint&) { self->OnConnected(id, error); });
                          });
}

void NodeConnection::OnConnected(std::uint64_t id, const boost::system::error_code& error) {
  if (id != connection_id_ || state_ != State::kConnecting) return;
  connect_timer_.cancel();
  if (error) {
    Fail(ErrorKind::kConnection, "connect to " + endpoint_.ToString() + ": " + error.message());
    return;
  }
  boost::system::error_code ignored;
  socket_.set_option(tcp::no_delay(true), ignored);  // batches are already coalesced by us
  state_ = State::kConnected;
  backoff_ = options_.backoff_min;
  ++stats_.connects;
  reader_.Reset();
  StartRead();
  Flush();
}

void NodeConnection::StartRead() {
  socket_.async_read_some(asio::buffer(read_buffer_),
                          [self = shared_from_this(), id = connection_id_](
                              const boost::system::error_code& error, std::size_t size) {
                            self->OnRead(id, error, size);
                          });
}

void NodeConnection::OnRead(std::uint64_t id, const boost::system::error_code& error,
                            std::size_t size) {
  if (id != connection_id_) return;
  if (error) {
    Fail(ErrorKind::kConnection,
         endpoint_.ToString() +
             (error == asio::error::eof ? " closed the connection" : ": " + error.message()));
    return;
  }
  reader_.Feed(std::string_view(read_buffer_.data(), size));
  Reply reply;
  for (;;) {
    const ReplyReader::Status status = reader_.Next(&reply);
    if (status == ReplyReader::Status::kIncomplete) break;
    if (status == ReplyReader::Status::kProtocolError) {
      Fail(ErrorKind::kProtocol, endpoint_.ToString() + ": " + reader_.error());
      return;
    }
    if (in_flight_.empty()) {
      Fail(ErrorKind::kProtocol, endpoint_.ToString() + " sent a reply nobody asked for");
      return;
    }
    ExpectedReply expected = std::move(in_flight_.front());
    in_flight_.pop_front();
    Dispatch(expected, std::move(reply));
    if (id != connection_id_) return;  // the owner closed us, or a callback failed the socket
  }
  StartRead();
}

void NodeConnection::Dispatch(const ExpectedReply& expected, Reply reply) {
  switch (expected.role) {
    case ExpectedReply::Role::kAsking:
      // Ignored: if ASKING failed, the command after it fails too and says why.
      return;
    case ExpectedReply::Role::kCommand:
      if (expected.command->done || expected.command->attempt != expected.attempt) return;
      owner_->OnCommandReply(*this, expected.command, std::move(reply));
      return;
    case ExpectedReply::Role::kWait:
      owner_->OnWaitReply(*this, *expected.wait_group, std::move(reply));
      return;
  }
}

void NodeConnection::ScheduleFlush() {
  if (writing_ || flush_scheduled_) return;
  // Why post instead of writing now: every command issued by the handlers already queued on this
  // io_context (other requests of the same epoll round) joins the same write.
  flush_scheduled_ = true;
  asio::post(io_, [self = shared_from_this()] {
    self->flush_scheduled_ = false;
    self->Flush();
  });
}

void NodeConnection::Flush() {
  if (state_ != State::kConnected || writing_ || pending_.empty()) return;
  write_buffer_.clear();
  const std::size_t written = AssembleBatch(pending_, &write_buffer_, &in_flight_);
  pending_.clear();
  if (write_buffer_.empty()) return;  // everything queued had timed out
  ++stats_.writes;
  stats_.commands_written += written;
  if (in_flight_.back().role == ExpectedReply::Role::kWait) ++stats_.waits_written;
  writing_ = true;
  asio::async_write(
      socket_, asio::buffer(write_buffer_),
      [self = shared_from_this(), id = connection_id_](
          const boost::system::error_code& error, std::size_t) { self->OnWritten(id, error); });
}

void NodeConnection::OnWritten(std::uint64_t id, const boost::system::error_code& error) {
  if (id != connection_id_) return;
  writing_ = false;
  if (error) {
    Fail(ErrorKind::kConnection, "write to " + endpoint_.ToString() + ": " + error.message());
    return;
  }
  // What was queued during this write has waited one write already: send it now.
  Flush();
}

void NodeConnection::Fail(ErrorKind kind, const std::string& message) {
  if (state_ == State::kBackoff || state_ == State::kClosed) return;
  if (state_ == State::kConnected) ++stats_.connection_losses;
  DropSocket();

  std::vector<CommandPtr> unsent;
  for (const QueuedCommand& item : pending_) {
    if (!item.command->done) unsent.push_back(item.command);
  }
  pending_.clear();
  std::vector<CommandPtr> in_flight;
  for (const ExpectedReply& expected : in_flight_) {
    if (expected.role == ExpectedReply::Role::kCommand) {
      if (!expected.command->done && expected.command->attempt == expected.attempt) {
        in_flight.push_back(expected.command);
      }
    } else if (expected.role == ExpectedReply::Role::kWait) {
      // Answered, but their WAIT was not: durability unknown, so they count as in flight.
      for (const WaitGroup::Member& member : expected.wait_group->members) {
        if (!member.command->done && member.command->attempt == member.attempt &&
            member.command->reply_awaiting_wait) {
          in_flight.push_back(member.command);
        }
      }
    }
  }
  in_flight_.clear();

  state_ = State::kBackoff;
  backoff_timer_.expires_after(backoff_);
  backoff_ = std::min(backoff_ * 2, options_.backoff_max);
  backoff_timer_.async_wait([self = shared_from_this()](const boost::system::error_code& error) {
    if (error || self->state_ != State::kBackoff) return;
    self->state_ = State::kIdle;  // the next Send connects
  });
  owner_->OnConnectionLost(*this, std::move(unsent), std::move(in_flight), Error{kind, message});
}

}  // namespace redpacket::net::redis
