// The packet event hub: subscribers per packet, the rp-events thread that reads details after a
// wake-up or a poll tick, and the SSE framing of grab and finished events.
#include "http/events/packet_events.h"

#include <fmt/format.h>
#include <pthread.h>
#include <spdlog/spdlog.h>

#include <boost/json/serialize.hpp>

#include "http/codec/packet_json.h"

namespace redpacket::http {

using SteadyClock = std::chrono::steady_clock;

PacketEvents::PacketEvents(PacketEventsOptions options, service::RedPacketService& service)
    : options_(options), service_(service) {}

PacketEvents::~PacketEvents() { Stop(); }

void PacketEvents::Start() {
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "rp-events");
    Run();
  });
}

void PacketEvents::Stop() {
  {
    std::lock_guard lock(mutex_);
    if (stop_) return;
    stop_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
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
    dirty_.insert(packet_id);
  }
  wake_.notify_one();
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
        dirty_.insert(packet_id);
      }
      wake_.notify_one();
    };
    respond(std::move(response));
  });
}

void PacketEvents::Run() {
  auto next_poll = SteadyClock::now() + options_.poll_interval;
  auto last_reads = SteadyClock::now() - options_.gather;
  std::unique_lock lock(mutex_);
  while (!stop_) {
    wake_.wait_until(lock, next_poll, [this] { return stop_ || !dirty_.empty(); });
    // At most one round of reads per `gather`: the grabs of that time share one read.
    wake_.wait_until(lock, last_reads + options_.gather, [this] { return stop_; });
    if (stop_) break;
    last_reads = SteadyClock::now();
    std::set<domain::PacketId> due;
    due.swap(dirty_);
    if (SteadyClock::now() >= next_poll) {
      for (const auto& [id, topic] : topics_) due.insert(id);
      next_poll = SteadyClock::now() + options_.poll_interval;
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
    lock.lock();
  }
}

void PacketEvents::Deliver(domain::PacketId packet_id,
                           domain::Result<store::PacketSnapshot> snapshot) {
  bool wake = false;
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
      dirty_.insert(packet_id);
      wake = true;
    }
  }
  if (wake) wake_.notify_one();
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
