// Connection: the state machine of one client connection (read, parse, dispatch, write in order,
// idle timeout and head deadline, streaming, drain on shutdown), and the two ways a handler
// answers it from any thread (Responder, ResponseStream).
#include "http/transport/connection.h"

#include <fmt/format.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http/error.hpp>
#include <cstring>

namespace redpacket::http {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

Connection::Connection(tcp::socket socket, std::uint64_t address_key, const ServerOptions& options,
                       RequestHandler& handler, ServerStats& stats, IoLoop& loop)
    : socket_(std::move(socket)),
      address_key_(address_key),
      options_(options),
      handler_(handler),
      stats_(stats),
      loop_(loop),
      timer_(socket_.get_executor()) {
  buffer_.resize(kInitialBuffer);
}

void Connection::Start() {
  loop_.connections.emplace(this, shared_from_this());
  ++stats_.open_connections;
  ++stats_.accepted_connections;
  last_activity_ = SteadyClock::now();
  ArmTimer();
  Read();
}

void Connection::Deliver(std::uint64_t slot, Response response) {
  if (loop_.io.get_executor().running_in_this_thread()) return Complete(slot, std::move(response));
  bool first;
  {
    std::lock_guard lock(loop_.inbox_mutex);
    first = loop_.inbox.empty();
    loop_.inbox.push_back({shared_from_this(), slot, std::move(response)});
  }
  if (first) asio::post(loop_.io, [&loop = loop_] { DrainInbox(loop); });
}

void Connection::DrainInbox(IoLoop& loop) {
  std::vector<IoLoop::Delivery> deliveries;
  {
    std::lock_guard lock(loop.inbox_mutex);
    deliveries.swap(loop.inbox);
  }
  for (auto& delivery : deliveries)
    delivery.connection->Complete(delivery.slot, std::move(delivery.response));
}

void Connection::Drain() {
  closing_ = true;
  if (stream_ || (slots_.empty() && !writing_)) Close();
}

void Connection::StreamWrite(std::string chunk) {
  if (closed_ || !stream_) return;
  if (stream_pending_.size() > options_.stream_buffer_limit) {
    // The reader does not keep up (more than the limit still waits behind the write in
    // flight): drop it rather than buffer without bound. One event larger than the limit (the
    // details of a big packet) still goes to a reader that keeps up.
    ++stats_.streams_dropped;
    return Close();
  }
  stream_pending_.append(chunk);
  FlushStream();
}

void Connection::StreamEnd() {
  if (closed_ || !stream_) return;
  stream_ended_ = true;
  if (!writing_ && stream_pending_.empty()) Close();
}

void Connection::Read() {
  if (reading_ || closed_) return;
  if (end_ == buffer_.size()) {
    // The unparsed request fills the buffer: grow up to what the limits allow.
    const std::size_t most = options_.header_limit + options_.body_limit + 4096;
    if (begin_ > 0) {
      std::memmove(buffer_.data(), buffer_.data() + begin_, end_ - begin_);
      end_ -= begin_;
      begin_ = 0;
    } else if (buffer_.size() < most) {
      buffer_.resize(std::min(most, buffer_.size() * 2));
    } else {
      return Fail(domain::ErrorCode::kPayloadTooLarge, "request too large");
    }
  }
  reading_ = true;
  socket_.async_read_some(asio::buffer(buffer_.data() + end_, buffer_.size() - end_),
                          [self = shared_from_this()](boost::system::error_code error,
                                                      std::size_t n) { self->OnRead(error, n); });
}

void Connection::OnRead(boost::system::error_code error, std::size_t n) {
  reading_ = false;
  if (stream_) {
    // Streaming: a read only notices the peer leaving; whatever it sends is ignored.
    if (error) return Close();
    begin_ = end_ = 0;
    return Read();
  }
  if (error) {
    // The peer closed or reset: answer nothing more; close once what is owed is written.
    closing_ = true;
    if (slots_.empty() && !writing_) Close();
    return;
  }
  end_ += n;
  last_activity_ = SteadyClock::now();
  ParseAvailable();
}

void Connection::ParseAvailable() {
  while (!closing_ && slots_.size() < options_.max_pipelined && begin_ < end_) {
    if (!parser_) {
      request_ = Request{};
      request_.peer_key = address_key_;
      parser_.emplace(request_, options_.header_limit, options_.body_limit);
    }
    boost::beast::error_code error;
    const std::size_t used =
        parser_->put(asio::buffer(buffer_.data() + begin_, end_ - begin_), error);
    begin_ += used;
    if (parser_->is_header_done()) head_deadline_.reset();
    if (error == boost::beast::http::error::need_more) break;
    if (error) {
      ++stats_.parse_errors;
      const bool too_large = error == boost::beast::http::error::header_limit ||
                             error == boost::beast::http::error::body_limit ||
                             error == boost::beast::http::error::buffer_overflow;
      return Fail(too_large ? domain::ErrorCode::kPayloadTooLarge : domain::ErrorCode::kBadRequest,
                  too_large
                      ? fmt::format("request exceeds the limits (headers {} bytes, body {} bytes)",
                                    options_.header_limit, options_.body_limit)
                      : "malformed HTTP request: " + error.message());
    }
    if (parser_->is_done()) {
      parser_.reset();
      Dispatch(std::move(request_));
    }
  }
  if (begin_ == end_) begin_ = end_ = 0;
  // A head has begun and waits for more bytes: it must be complete by its deadline, counted
  // from the read that brought its first bytes. Each byte resets the idle timeout, so without
  // this a client trickling a byte a second would hold the connection for ever.
  if (parser_ && !parser_->is_header_done() && !head_deadline_ &&
      options_.header_timeout.count() > 0) {
    head_deadline_ = last_activity_ + options_.header_timeout;
    ArmTimer();
  }
  if (!closing_ && slots_.size() < options_.max_pipelined) Read();
}

void Connection::Dispatch(Request request) {
  const std::uint64_t slot = first_slot_ + slots_.size();
  slots_.emplace_back();
  if (!request.keep_alive || loop_.draining) {
    slots_.back().close = true;
    closing_ = true;
  }
  ++stats_.requests;
  handler_.Handle(std::move(request), Responder(shared_from_this(), slot));
}

void Connection::Fail(domain::ErrorCode code, std::string message) {
  const std::uint64_t slot = first_slot_ + slots_.size();
  slots_.emplace_back();
  closing_ = true;
  Response response = ErrorResponse(code, message);
  response.close = true;
  Complete(slot, std::move(response));
}

void Connection::Complete(std::uint64_t slot, Response response) {
  if (closed_ || slot < first_slot_) return;
  Slot& entry = slots_[slot - first_slot_];
  entry.close =
      entry.close || response.close || (closing_ && slot + 1 == first_slot_ + slots_.size());
  if (response.on_stream) response.close = entry.close = true;  // nothing follows a stream
  response.close = entry.close;
  AppendWire(response, entry.wire);
  entry.stream_start = std::move(response.on_stream);
  entry.ready = true;
  Flush();
}

void Connection::Flush() {
  if (writing_ || closed_) return;
  bool close_after = false;
  while (!slots_.empty() && slots_.front().ready) {
    Slot& front = slots_.front();
    if (write_buffer_.empty())
      write_buffer_.swap(front.wire);
    else
      write_buffer_.append(front.wire);
    close_after = front.close;
    if (front.stream_start) stream_start_ = std::move(front.stream_start);
    slots_.pop_front();
    ++first_slot_;
    if (close_after) break;
  }
  if (write_buffer_.empty()) {
    if (closing_ && slots_.empty()) Close();
    return;
  }
  writing_ = true;
  close_after_write_ = close_after && !stream_start_;
  asio::async_write(socket_, asio::buffer(write_buffer_),
                    [self = shared_from_this()](boost::system::error_code error, std::size_t) {
                      self->OnWrite(error);
                    });
}

void Connection::OnWrite(boost::system::error_code error) {
  writing_ = false;
  write_buffer_.clear();
  last_activity_ = SteadyClock::now();
  if (error || close_after_write_) return Close();
  if (stream_start_) return StartStream();
  if (stream_) {
    if (loop_.draining || (stream_ended_ && stream_pending_.empty())) return Close();
    return FlushStream();
  }
  Flush();
  if (!writing_ && closing_ && slots_.empty()) return Close();
  ParseAvailable();  // reading may have paused at the pipelining limit
}

void Connection::StartStream() {
  boost::system::error_code ignored;
  // A small send buffer: a reader that stops reading is noticed after about this many bytes
  // (the kernel doubles it), not after the several MiB of an auto-tuned loopback buffer.
  socket_.set_option(
      asio::socket_base::send_buffer_size(static_cast<int>(options_.stream_buffer_limit)), ignored);
  stream_ = std::make_shared<ResponseStream>(weak_from_this(), loop_.io);
  auto start = std::move(stream_start_);
  stream_start_ = nullptr;
  start(stream_);
  begin_ = end_ = 0;  // anything the client sent after its request is ignored
  Read();
}

void Connection::FlushStream() {
  if (writing_ || closed_ || stream_pending_.empty()) return;
  write_buffer_.swap(stream_pending_);
  writing_ = true;
  close_after_write_ = false;
  asio::async_write(socket_, asio::buffer(write_buffer_),
                    [self = shared_from_this()](boost::system::error_code error, std::size_t) {
                      self->OnWrite(error);
                    });
}

void Connection::ArmTimer() {
  if (closed_) return;
  SteadyClock::time_point next = last_activity_ + options_.idle_timeout;
  if (head_deadline_) next = std::min(next, *head_deadline_);
  // Idle for long but a handler still owes an answer: look again shortly, without spinning.
  next = std::max(next, SteadyClock::now() + std::chrono::milliseconds(10));
  if (timer_armed_ && timer_expiry_ <= next) return;
  timer_armed_ = true;
  timer_expiry_ = next;
  timer_.expires_at(next);  // cancels a later wait: its handler sees operation_aborted
  timer_.async_wait([self = shared_from_this()](boost::system::error_code error) {
    if (error) return;
    self->timer_armed_ = false;
    self->OnTimer();
  });
}

void Connection::OnTimer() {
  if (closed_) return;
  const auto now = SteadyClock::now();
  if (head_deadline_ && now >= *head_deadline_) {
    // Too slow a head: drop it, answer what was read before it, then close.
    ++stats_.header_timeouts;
    head_deadline_.reset();
    closing_ = true;
    if (slots_.empty() && !writing_) return Close();
  }
  // A stream is idle when nothing left for that long, even with a write pending (a reader
  // that stopped reading); its writer sends heartbeats more often than this.
  if (now - last_activity_ >= options_.idle_timeout && (stream_ || (slots_.empty() && !writing_))) {
    if (stream_ && writing_) ++stats_.streams_dropped;  // a reader that stopped reading
    return Close();
  }
  ArmTimer();
}

void Connection::Close() {
  if (closed_) return;
  closed_ = true;
  boost::system::error_code ignored;
  socket_.shutdown(tcp::socket::shutdown_both, ignored);
  socket_.close(ignored);
  timer_.cancel();
  if (stream_) stream_->MarkClosed();
  --stats_.open_connections;
  loop_.limiter->Release(address_key_);
  loop_.connections.erase(this);  // may drop the last owner: touch nothing after this
}

bool ResponseStream::Write(std::string chunk) {
  if (closed()) return false;
  auto connection = connection_.lock();
  if (!connection) return false;
  asio::post(io_, [connection = std::move(connection), chunk = std::move(chunk)]() mutable {
    connection->StreamWrite(std::move(chunk));
  });
  return true;
}

void ResponseStream::End() {
  auto connection = connection_.lock();
  if (!connection) return;
  asio::post(io_, [connection = std::move(connection)] { connection->StreamEnd(); });
}

void Responder::operator()(Response response) const {
  if (deliver_) return deliver_(std::move(response));
  connection_->Deliver(slot_, std::move(response));
}

}  // namespace redpacket::http
