// Live events of packets (GET /v1/packets/{id}/events, Server-Sent Events): one `grab` event per
// grab in seq order (id = seq), then one `finished` event once the packet is exhausted, expired
// or refunded. The same code in both modes: a stream reads its packet's details from the service
// (the memory store, the Redis store, or the ledger once evicted) and sends the grabs after the
// last seq it sent, stopping at the first gap, so a stream never skips nor repeats a seq. A grab
// acknowledged by this server marks its packet's streams (Notify) for the next tick (every
// `gather`: the grabs of that time share one read); a poll every
// poll_interval catches grabs made through other servers (cluster mode), expiry and refunds.
// Thread-safe; one thread of its own ("rp-events"), which never waits on a client: writes go
// to the connections' bounded buffers (a slow reader is dropped by the server).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <vector>

#include "http/transport/request_handler.h"
#include "http/transport/response.h"
#include "service/red_packet_service.h"
#include "threads/task_thread.h"

namespace redpacket::http {

struct PacketEventsOptions {
  std::size_t max_streams = 10000;  // open streams on this server; beyond: 503 with Retry-After
  std::chrono::milliseconds poll_interval{250};
  // Wake-ups by grabs are gathered this long into one read per packet: a read copies the
  // packet's grabs under its lock, so a stampede on a watched packet must not read it per grab.
  std::chrono::milliseconds gather{100};
  std::chrono::milliseconds heartbeat{15000};  // a comment line on a quiet stream (keeps it open)
};

class PacketEvents {
 public:
  PacketEvents(PacketEventsOptions options, service::RedPacketService& service);
  ~PacketEvents();  // Stop()

  void Start();
  // Blocking: ends the thread. Streams still open are ended (their connections close).
  void Stop();

  // A grab of `packet_id` was acknowledged here: wake its streams. Any thread; cheap.
  void Notify(domain::PacketId packet_id);

  // Opens a stream of `packet_id` resuming after `after_seq` (0: from the start). `respond` gets
  // an error (503 beyond max_streams, the packet's own 404...) or the streaming response.
  // Any thread; never blocks.
  void Open(domain::PacketId packet_id, std::int64_t after_seq,
            std::function<void(Response)> respond);

  std::size_t open_streams() const { return reserved_->load(); }
  std::uint64_t refused_streams() const { return refused_.load(); }

 private:
  struct Subscriber {
    std::shared_ptr<ResponseStream> stream;
    std::shared_ptr<void> reservation;  // releases the stream's place under max_streams
    std::int64_t last_seq = 0;
    std::chrono::steady_clock::time_point last_write;
  };
  struct Topic {
    std::vector<Subscriber> subscribers;
    bool in_flight = false;  // a read of the details is under way
    bool again = false;      // woken while in flight: read again when it returns
  };

  void Tick();
  void Refresh(domain::PacketId packet_id);  // mutex_ held
  void Deliver(domain::PacketId packet_id, domain::Result<store::PacketSnapshot> snapshot);
  // Sends what `subscriber` has not seen; true when its stream is done (finished or closed).
  bool Send(Subscriber& subscriber, const domain::Result<store::PacketSnapshot>& snapshot,
            std::chrono::steady_clock::time_point now);

  const PacketEventsOptions options_;
  service::RedPacketService& service_;
  // Streams opened or being opened; shared with the reservations, which may outlive this.
  std::shared_ptr<std::atomic<std::size_t>> reserved_ =
      std::make_shared<std::atomic<std::size_t>>(0);
  std::atomic<std::uint64_t> refused_{0};

  std::mutex mutex_;
  std::map<domain::PacketId, Topic> topics_;
  std::set<domain::PacketId> dirty_;
  bool stop_ = false;
  std::chrono::steady_clock::time_point next_poll_;  // when every topic is read again
  threads::TaskThread thread_;                       // "rp-events": Tick() every gather
};

}  // namespace redpacket::http
