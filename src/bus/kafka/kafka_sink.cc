// The Kafka EventSink (see kafka_sink.h). Every publish gets a ticket; the delivery report of its
// message settles the ticket, and WhenDurable waits until every earlier ticket is settled.
#include "bus/kafka/kafka_sink.h"

#include <librdkafka/rdkafkacpp.h>
#include <spdlog/spdlog.h>

#include <stdexcept>
#include <vector>

#include "bus/codec/event_codec.h"
#include "bus/kafka/kafka_client.h"

namespace redpacket::bus {

// What a message carries through librdkafka as its opaque pointer, owned by it until its report.
struct KafkaSink::Delivery {
  std::uint64_t ticket = 0;
  Completion done;
  Failure failed;
};

class KafkaSink::DeliveryReports final : public RdKafka::DeliveryReportCb {
 public:
  explicit DeliveryReports(KafkaSink& sink) : sink_(sink) {}
  // Runs inside producer poll()/flush(): on the delivery thread, or in Close().
  void dr_cb(RdKafka::Message& message) override {
    std::unique_ptr<Delivery> delivery(static_cast<Delivery*>(message.msg_opaque()));
    if (message.err() == RdKafka::ERR_NO_ERROR) {
      if (delivery->done) delivery->done();
    } else if (delivery->failed) {
      delivery->failed(domain::MakeError(domain::ErrorCode::kUnavailable,
                                         "kafka: not acknowledged: " + message.errstr()));
    }
    sink_.Settle(delivery->ticket);
  }
  kafka_client::LogEvents log_events;

 private:
  KafkaSink& sink_;
};

KafkaSink::KafkaSink(KafkaSinkOptions options)
    : options_(std::move(options)), reports_(std::make_unique<DeliveryReports>(*this)) {
  auto conf = kafka_client::MakeConf({
      {"bootstrap.servers", options_.brokers},
      {"client.id", "redpacket-sink"},
      // Invariant 4 (docs/invariants.md): an event is acknowledged only once every in-sync
      // replica has it, and a retried send is never written twice nor reordered within its
      // partition.
      {"enable.idempotence", "true"},
      {"acks", "all"},
      {"message.timeout.ms", std::to_string(options_.message_timeout.count())},
      {"linger.ms", std::to_string(options_.linger.count())},
      // The partitioner of the Java clients, so any producer puts a user on the same partition.
      {"partitioner", "murmur2_random"},
      // Back within a second of a broker's restart (the default backs off up to 10 s).
      {"reconnect.backoff.ms", "100"},
      {"reconnect.backoff.max.ms", "1000"},
  });
  std::string error;
  if (conf->set("dr_cb", static_cast<RdKafka::DeliveryReportCb*>(reports_.get()), error) !=
          RdKafka::Conf::CONF_OK ||
      conf->set("event_cb", static_cast<RdKafka::EventCb*>(&reports_->log_events), error) !=
          RdKafka::Conf::CONF_OK) {
    throw std::invalid_argument("kafka: " + error);
  }
  producer_.reset(RdKafka::Producer::create(conf.get(), error));
  if (!producer_) throw std::invalid_argument("kafka: cannot create a producer: " + error);
  delivery_thread_ = std::make_unique<threads::TaskThread>(
      threads::TaskThread::Options{.name = "rp-kafka-dr"}, [this] { ServeDeliveryReports(); });
  delivery_thread_->Start();
}

std::unique_ptr<KafkaSink> KafkaSink::Connect(KafkaSinkOptions options,
                                              std::chrono::milliseconds timeout) {
  auto sink = std::make_unique<KafkaSink>(options);
  domain::Status reachable = kafka_client::CheckTopic(*sink->producer_, options.topic, timeout);
  if (!reachable.ok()) {
    throw std::runtime_error("cannot reach Kafka at " + options.brokers + ": " +
                             reachable.error().message);
  }
  return sink;
}

KafkaSink::~KafkaSink() { Close(); }

void KafkaSink::Publish(const domain::LedgerEvent& event, Completion done, Failure failed) {
  // The key is the receiving user: all of one user's credits go through one partition, in order.
  PublishRaw(std::to_string(event.user_id), codec::EncodeEvent(event), std::move(done),
             std::move(failed));
}

std::uint64_t KafkaSink::Append(const domain::LedgerEvent& event, Completion done) {
  std::string event_id = event.EventId();
  Publish(event, std::move(done), [event_id](const domain::Error& error) {
    spdlog::error("kafka: event {} was not published: {}", event_id, error.message);
  });
  return 0;
}

void KafkaSink::PublishRaw(const std::string& key, const std::string& payload, Completion done,
                           Failure failed) {
  std::unique_lock lock(mutex_);
  if (closed_) {
    lock.unlock();
    if (failed) failed(domain::MakeError(domain::ErrorCode::kUnavailable, "kafka: sink closed"));
    return;
  }
  const std::uint64_t ticket = next_ticket_++;
  unsettled_.insert(ticket);
  auto delivery = std::make_unique<Delivery>(Delivery{ticket, std::move(done), std::move(failed)});
  // Under the lock, so Close() never misses a message produced concurrently and tickets follow
  // produce order. produce() copies and queues; it never waits for the network.
  const RdKafka::ErrorCode code = producer_->produce(
      options_.topic, RdKafka::Topic::PARTITION_UA, RdKafka::Producer::RK_MSG_COPY,
      const_cast<char*>(payload.data()), payload.size(), key.data(), key.size(), 0, delivery.get());
  if (code == RdKafka::ERR_NO_ERROR) {
    delivery.release();  // librdkafka owns it until its delivery report
    return;
  }
  // A full local queue (the broker has been away for a while) or a bad topic: fail on the
  // delivery thread, as a report would, so the caller never runs its failure reentrantly.
  immediate_failures_.push_back([this, delivery = std::shared_ptr<Delivery>(std::move(delivery)),
                                 reason = RdKafka::err2str(code)] {
    if (delivery->failed) {
      delivery->failed(
          domain::MakeError(domain::ErrorCode::kUnavailable, "kafka: cannot queue: " + reason));
    }
    Settle(delivery->ticket);
  });
}

void KafkaSink::WhenDurable(std::uint64_t /*position*/, Completion done) {
  std::unique_lock lock(mutex_);
  if (unsettled_.empty()) {
    lock.unlock();
    done();
    return;
  }
  waiters_.emplace(next_ticket_ - 1, std::move(done));
}

void KafkaSink::Settle(std::uint64_t ticket) {
  std::vector<Completion> ready;
  {
    std::lock_guard lock(mutex_);
    unsettled_.erase(ticket);
    // Every ticket below the oldest unsettled one is settled.
    const std::uint64_t oldest = unsettled_.empty() ? next_ticket_ : *unsettled_.begin();
    auto end = waiters_.lower_bound(oldest);
    for (auto it = waiters_.begin(); it != end; ++it) ready.push_back(std::move(it->second));
    waiters_.erase(waiters_.begin(), end);
  }
  for (Completion& done : ready) done();
}

// A tick of the delivery thread, back to back: it waits by itself, in poll.
void KafkaSink::ServeDeliveryReports() {
  producer_->poll(50);  // serves delivery reports: dr_cb runs here
  std::deque<std::function<void()>> failures;
  {
    std::lock_guard lock(mutex_);
    failures.swap(immediate_failures_);
  }
  for (auto& fail : failures) fail();
}

void KafkaSink::Close(std::chrono::milliseconds timeout) {
  {
    std::lock_guard lock(mutex_);
    if (closed_) return;
    closed_ = true;  // from here on no message is produced
  }
  if (delivery_thread_) delivery_thread_->Stop();
  // flush() serves the remaining reports on this thread; what is still unacked then is purged
  // and its reports (ERR__PURGE_*) fail it, so every publish ends with done or failed.
  producer_->flush(static_cast<int>(timeout.count()));
  if (producer_->outq_len() > 0) {
    spdlog::warn("kafka: closing with {} unacknowledged messages; failing them",
                 producer_->outq_len());
    producer_->purge(RdKafka::Producer::PURGE_QUEUE | RdKafka::Producer::PURGE_INFLIGHT);
    producer_->flush(1000);
  }
  std::deque<std::function<void()>> failures;
  {
    std::lock_guard lock(mutex_);
    failures.swap(immediate_failures_);
  }
  for (auto& fail : failures) fail();
}

std::size_t KafkaSink::pending() const {
  std::lock_guard lock(mutex_);
  return unsettled_.size();
}

domain::Status KafkaSink::CheckHealth(std::chrono::milliseconds timeout) {
  return kafka_client::CheckTopic(*producer_, options_.topic, timeout);
}

domain::Result<PartitionOffsets> KafkaSink::EndOffsets(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  auto left = [&] {
    return static_cast<int>(std::max<std::int64_t>(
        1, std::chrono::duration_cast<std::chrono::milliseconds>(deadline -
                                                                 std::chrono::steady_clock::now())
               .count()));
  };
  std::unique_ptr<RdKafka::Topic> topic;
  {
    std::string error;
    topic.reset(RdKafka::Topic::create(producer_.get(), options_.topic, nullptr, error));
    if (!topic) {
      return domain::MakeError(domain::ErrorCode::kUnavailable, "kafka: " + error);
    }
  }
  RdKafka::Metadata* raw = nullptr;
  const RdKafka::ErrorCode code = producer_->metadata(false, topic.get(), &raw, left());
  std::unique_ptr<RdKafka::Metadata> metadata(raw);
  if (code != RdKafka::ERR_NO_ERROR || !metadata || metadata->topics()->empty()) {
    return domain::MakeError(
        domain::ErrorCode::kUnavailable,
        "kafka: no metadata for " + options_.topic + ": " + RdKafka::err2str(code));
  }
  PartitionOffsets offsets;
  for (const RdKafka::PartitionMetadata* partition : *metadata->topics()->front()->partitions()) {
    std::int64_t low = 0;
    std::int64_t high = 0;
    const RdKafka::ErrorCode queried =
        producer_->query_watermark_offsets(options_.topic, partition->id(), &low, &high, left());
    if (queried != RdKafka::ERR_NO_ERROR) {
      return domain::MakeError(domain::ErrorCode::kUnavailable,
                               "kafka: watermarks of partition " + std::to_string(partition->id()) +
                                   ": " + RdKafka::err2str(queried));
    }
    offsets[partition->id()] = static_cast<std::uint64_t>(std::max<std::int64_t>(0, high));
  }
  return offsets;
}

}  // namespace redpacket::bus
