// The packet event hub: subscribers per packet, the rp-events thread that reads details after a
// wake-up or a poll tick, and the SSE framing of grab and finished events.
#include "http/events/packet_events.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <boost/json/serialize.hpp>

#include "http/codec/packet_json.h"

namespace redpacket::http {

using SteadyClock = std::chrono::steady_clock;

PacketEvents::PacketEvents(PacketEventsOptions options, service::RedPacketService& service)
    : options_(options),
      service_(service),
      thread_({.name = "rp-events", .period = options_.gather}, [this] { Tick(); }) {}

PacketEvents::~PacketEvents() { Stop(); }

void PacketEvents::Start() {
  {
    std::lock_guard lock(mutex_);
    next_poll_ = SteadyClock::now() + options_.poll_interval;
  }
  thread_.Start();
}

void PacketEvents::Stop() {
  {
    std::lock_guard lock(mutex_);
    if (stop_) return;
    stop_ = true;
  }
  thread_.Stop();
  std::lock_guard lock(mutex_);
  for (auto& [id, topic] : topics_) {
    for (auto& subscriber : topic.subscribers) subscriber.stream->End();
  }
  topics_.clear();
}

void PacketEvents::Notify(domain::PacketId packet_id) {
  {
    std::lock_guard lock(mutex_);
    if (!topics_.contains(packet_id)) return;
    dirty_.insert(packet_id);  // read at the next tick: the grabs of one `gather` share a read
  }
}

void PacketEvents::Open(domain::PacketId packet_id, std::int64_t after_seq,
                        std::function<void(Response)> respond) {
  // The place is taken before the packet is read, so concurrent opens cannot pass the limit.
  if (reserved_->fetch_add(1) >= options_.max_streams) {
    reserved_->fetch_sub(1);
    ++refused_;
    Response response = ErrorResponse(
        domain::ErrorCode::kUnavailable,
        fmt::format("too many event streams (max {}); retry later", options_.max_streams));
    response.retry_after_s = 5;
    return respond(std::move(response));
  }
  // Released when the subscriber goes, or when the response is dropped before its head left.
  std::shared_ptr<void> reservation(nullptr,
                                    [counter = reserved_](void*) { counter->fetch_sub(1); });
  service_.GetPacket(packet_id, [this, packet_id, after_seq, respond = std::move(respond),
                                 reservation = std::move(reservation)](
                                    domain::Result<store::PacketSnapshot> snapshot) mutable {
    if (!snapshot) return respond(ErrorResponse(snapshot.error()));
    Response response;
    response.content_type = "text/event-stream";
    // no-transform and X-Accel-Buffering: proxies (nginx) must pass each event at once.
    response.headers = "Cache-Control: no-cache, no-transform\r\nX-Accel-Buffering: no\r\n";
    response.on_stream = [this, packet_id, after_seq, reservation = std::move(reservation)](
                             std::shared_ptr<ResponseStream> stream) mutable {
      {
        std::lock_guard lock(mutex_);
        if (stop_) return stream->End();
        topics_[packet_id].subscribers.push_back(
            Subscriber{std::move(stream), std::move(reservation), after_seq, SteadyClock::now()});
        dirty_.insert(packet_id);  // its first read at the next tick
      }
    };
    respond(std::move(response));
  });
}

// A tick every `gather`: one round of reads of the packets woken since the last one, and of every
// packet when the poll is due. At most one round per `gather`: the grabs of that time share a read.
void PacketEvents::Tick() {
  std::unique_lock lock(mutex_);
  if (stop_) return;
  const auto now = SteadyClock::now();
  const bool poll = now >= next_poll_;
  if (dirty_.empty() && !poll) return;
  std::set<domain::PacketId> due;
  due.swap(dirty_);
  if (poll) {
    for (const auto& [id, topic] : topics_) due.insert(id);
    next_poll_ = now + options_.poll_interval;
  }
  std::vector<domain::PacketId> reads;
  for (domain::PacketId id : due) {
    auto topic = topics_.find(id);
    if (topic == topics_.end()) continue;
    if (topic->second.in_flight) {
      topic->second.again = true;  // read again once the current read returns
      continue;
    }
    topic->second.in_flight = true;
    reads.push_back(id);
  }
  // Unlocked: the service may run the callback at once, on this thread.
  lock.unlock();
  for (domain::PacketId id : reads) {
    service_.GetPacket(id, [this, id](domain::Result<store::PacketSnapshot> snapshot) {
      Deliver(id, std::move(snapshot));
    });
  }
}

void PacketEvents::Deliver(domain::PacketId packet_id,
                           domain::Result<store::PacketSnapshot> snapshot) {
  {
    std::lock_guard lock(mutex_);
    auto topic = topics_.find(packet_id);
    if (topic == topics_.end()) return;
    topic->second.in_flight = false;
    const auto now = SteadyClock::now();
    auto& subscribers = topic->second.subscribers;
    std::erase_if(subscribers,
                  [&](Subscriber& subscriber) { return Send(subscriber, snapshot, now); });
    if (subscribers.empty()) {
      topics_.erase(topic);
    } else if (std::exchange(topic->second.again, false)) {
      dirty_.insert(packet_id);  // the next tick reads it again
    }
  }
}

bool PacketEvents::Send(Subscriber& subscriber,
                        const domain::Result<store::PacketSnapshot>& snapshot,
                        SteadyClock::time_point now) {
  if (subscriber.stream->closed()) return true;
  std::string chunk;
  if (snapshot) {
    // Grabs are listed in seq order; send the run that follows the last seq sent, and stop at a
    // gap (a read that lags, e.g. a replica, shows the rest on a later read).
    for (const domain::Grab& grab : snapshot->record.grabs) {
      if (grab.seq <= subscriber.last_seq) continue;
      if (grab.seq != subscriber.last_seq + 1) break;
      chunk += fmt::format("id: {}\nevent: grab\ndata: {}\n\n", grab.seq,
                           boost::json::serialize(GrabJson(grab)));
      subscriber.last_seq = grab.seq;
    }
    const bool all_sent =
        subscriber.last_seq >= static_cast<std::int64_t>(snapshot->record.grabs.size());
    if (snapshot->record.status != domain::PacketStatus::kOpen && all_sent) {
      chunk += fmt::format("event: finished\ndata: {}\n\n",
                           boost::json::serialize(PacketDetailsJson(snapshot.value())));
      subscriber.stream->Write(std::move(chunk));
      subscriber.stream->End();
      return true;
    }
  }
  if (chunk.empty() && now - subscriber.last_write >= options_.heartbeat) chunk = ": heartbeat\n\n";
  if (chunk.empty()) return false;
  subscriber.last_write = now;
  return !subscriber.stream->Write(std::move(chunk));
}

}  // namespace redpacket::http
