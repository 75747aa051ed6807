// The Kafka EventSource (see kafka_source.h): a consumer group member with manual commits, its
// rebalance handling, and the dead-letter producer.
#include "bus/kafka/kafka_source.h"

#include <algorithm>
#include <stdexcept>

#include <boost/json.hpp>
#include <fmt/format.h>
#include <librdkafka/rdkafkacpp.h>
#include <spdlog/spdlog.h>

#include "bus/codec/event_codec.h"
#include "bus/kafka/kafka_client.h"

namespace redpacket::bus {
namespace {

using domain::ErrorCode;
using domain::MakeError;
using Milliseconds = std::chrono::milliseconds;

// What a dead-letter message's delivery report tells DeadLetter(), which waits for it.
struct DeadLetterReport {
  bool reported = false;
  RdKafka::ErrorCode code = RdKafka::ERR_NO_ERROR;
  std::string reason;
};

// A commit the group will never take: this member was presumed dead (it did not poll within
// max.poll.interval.ms, or its session expired) or the group is rebalancing. Its partitions are
// another member's now (or will be this one's again after it polls): retrying cannot help.
bool GroupMovedOn(RdKafka::ErrorCode code) {
  switch (code) {
    case RdKafka::ERR_UNKNOWN_MEMBER_ID:
    case RdKafka::ERR_ILLEGAL_GENERATION:
    case RdKafka::ERR_REBALANCE_IN_PROGRESS:
    case RdKafka::ERR_FENCED_INSTANCE_ID:
    case RdKafka::ERR__ASSIGNMENT_LOST:
    case RdKafka::ERR__MAX_POLL_EXCEEDED:
      return true;
    default:
      return false;
  }
}

// kConflict when the group moved on (the worker drops the commit and polls again, which is how
// it rejoins), kUnavailable otherwise (retried).
domain::Error CommitFailed(RdKafka::ErrorCode code, std::string message) {
  return MakeError(GroupMovedOn(code) ? ErrorCode::kConflict : ErrorCode::kUnavailable,
                   std::move(message));
}

std::string Hex(const std::string& bytes) {
  std::string hex;
  hex.reserve(bytes.size() * 2);
  for (unsigned char byte : bytes) fmt::format_to(std::back_inserter(hex), "{:02x}", byte);
  return hex;
}

ConsumedMessage ToConsumedMessage(const RdKafka::Message& message) {
  ConsumedMessage consumed;
  consumed.partition = message.partition();
  consumed.offset = static_cast<std::uint64_t>(message.offset());
  consumed.payload.assign(static_cast<const char*>(message.payload()), message.len());
  auto event = codec::DecodeEvent(consumed.payload);
  if (event.ok()) {
    consumed.event = std::move(*event);
  } else {
    consumed.decode_error = event.error().message;
  }
  return consumed;
}

}  // namespace

class KafkaSource::Callbacks final : public RdKafka::RebalanceCb, public RdKafka::DeliveryReportCb {
 public:
  explicit Callbacks(KafkaSource& source) : source_(source) {}

  // Runs inside consume() on the Poll thread. The partitions revoked from this member may still
  // have polled, uncommitted messages in the worker: the next owner re-reads them from the
  // committed offset, which is harmless because applying an event is idempotent.
  void rebalance_cb(RdKafka::KafkaConsumer* consumer, RdKafka::ErrorCode code,
                    std::vector<RdKafka::TopicPartition*>& partitions) override {
    const bool cooperative = consumer->rebalance_protocol() == "COOPERATIVE";
    if (code == RdKafka::ERR__ASSIGN_PARTITIONS) {
      if (cooperative) {
        delete consumer->incremental_assign(partitions);
      } else {
        consumer->assign(partitions);
      }
      for (const RdKafka::TopicPartition* partition : partitions) {
        source_.assigned_.insert(partition->partition());
      }
    } else {
      if (cooperative) {
        delete consumer->incremental_unassign(partitions);
        for (const RdKafka::TopicPartition* partition : partitions) {
          source_.assigned_.erase(partition->partition());
        }
      } else {
        consumer->unassign();
        source_.assigned_.clear();
      }
    }
    spdlog::info("kafka: group {} {} {} partition(s); now owns {}", source_.options_.group_id,
                 code == RdKafka::ERR__ASSIGN_PARTITIONS ? "assigned" : "revoked",
                 partitions.size(), source_.assigned_.size());
  }

  // Runs inside the dead-letter producer's flush()/poll(), on the calling thread.
  void dr_cb(RdKafka::Message& message) override {
    auto* report = static_cast<DeadLetterReport*>(message.msg_opaque());
    report->reported = true;
    report->code = message.err();
    report->reason = message.errstr();
  }

  kafka_client::LogEvents log_events;

 private:
  KafkaSource& source_;
};

KafkaSource::KafkaSource(KafkaSourceOptions options)
    : options_(std::move(options)), callbacks_(std::make_unique<Callbacks>(*this)) {
  std::string error;
  auto consumer_conf = kafka_client::MakeConf({
      {"bootstrap.servers", options_.brokers},
      {"client.id", "redpacket-worker"},
      {"group.id", options_.group_id},
      // Offsets are committed by Commit() only, after the ledger committed the events.
      {"enable.auto.commit", "false"},
      {"enable.auto.offset.store", "false"},
      // A new group starts with the first event ever written: nothing may be skipped.
      {"auto.offset.reset", "earliest"},
      {"isolation.level", "read_committed"},
      {"session.timeout.ms", std::to_string(options_.session_timeout.count())},
      // Also the rebalance timeout: how long a rebalance waits for a member that does not
      // rejoin (a worker killed mid-batch). librdkafka's default, 5 minutes, would leave the
      // dead worker's partitions unapplied that long.
      {"max.poll.interval.ms", std::to_string(options_.max_poll_interval.count())},
      {"reconnect.backoff.ms", "100"},
      {"reconnect.backoff.max.ms", "1000"},
  });
  if (consumer_conf->set("rebalance_cb", static_cast<RdKafka::RebalanceCb*>(callbacks_.get()),
                         error) != RdKafka::Conf::CONF_OK ||
      consumer_conf->set("event_cb", static_cast<RdKafka::EventCb*>(&callbacks_->log_events),
                         error) != RdKafka::Conf::CONF_OK) {
    throw std::invalid_argument("kafka: " + error);
  }
  consumer_.reset(RdKafka::KafkaConsumer::create(consumer_conf.get(), error));
  if (!consumer_) throw std::invalid_argument("kafka: cannot create a consumer: " + error);
  const RdKafka::ErrorCode subscribed = consumer_->subscribe({options_.topic});
  if (subscribed != RdKafka::ERR_NO_ERROR) {
    throw std::invalid_argument("kafka: cannot subscribe to " + options_.topic + ": " +
                                RdKafka::err2str(subscribed));
  }

  auto producer_conf = kafka_client::MakeConf({
      {"bootstrap.servers", options_.brokers},
      {"client.id", "redpacket-worker-dead-letters"},
      {"enable.idempotence", "true"},
      {"acks", "all"},
      {"message.timeout.ms", std::to_string(options_.request_timeout.count())},
      {"linger.ms", "0"},
  });
  if (producer_conf->set("dr_cb", static_cast<RdKafka::DeliveryReportCb*>(callbacks_.get()),
                         error) != RdKafka::Conf::CONF_OK ||
      producer_conf->set("event_cb", static_cast<RdKafka::EventCb*>(&callbacks_->log_events),
                         error) != RdKafka::Conf::CONF_OK) {
    throw std::invalid_argument("kafka: " + error);
  }
  dead_letters_.reset(RdKafka::Producer::create(producer_conf.get(), error));
  if (!dead_letters_) throw std::invalid_argument("kafka: cannot create a producer: " + error);
}

std::unique_ptr<KafkaSource> KafkaSource::Connect(KafkaSourceOptions options,
                                                  std::chrono::milliseconds timeout) {
  auto source = std::make_unique<KafkaSource>(options);
  domain::Status reachable = kafka_client::CheckTopic(*source->consumer_, options.topic, timeout);
  if (reachable.ok()) {
    reachable = kafka_client::CheckTopic(*source->dead_letters_, options.dead_letter_topic, timeout);
  }
  if (!reachable.ok()) {
    throw std::runtime_error("cannot reach Kafka at " + options.brokers + ": " +
                             reachable.error().message);
  }
  return source;
}

KafkaSource::~KafkaSource() { Close(); }

domain::Result<std::vector<ConsumedMessage>> KafkaSource::Poll(std::size_t max_messages,
                                                               Milliseconds wait) {
  if (closed_) return MakeError(ErrorCode::kUnavailable, "kafka: source closed");
  std::vector<ConsumedMessage> messages;
  const auto deadline = std::chrono::steady_clock::now() + wait;
  while (messages.size() < max_messages) {
    // Only the first message is waited for; after it, what is already fetched is taken.
    Milliseconds timeout{0};
    if (messages.empty()) {
      timeout = std::max(Milliseconds{0}, std::chrono::duration_cast<Milliseconds>(
                                              deadline - std::chrono::steady_clock::now()));
    }
    std::unique_ptr<RdKafka::Message> message(consumer_->consume(static_cast<int>(timeout.count())));
    switch (message->err()) {
      case RdKafka::ERR_NO_ERROR:
        messages.push_back(ToConsumedMessage(*message));
        break;
      case RdKafka::ERR__TIMED_OUT:
      case RdKafka::ERR__PARTITION_EOF:
        if (!messages.empty() || std::chrono::steady_clock::now() >= deadline) return messages;
        break;
      default:
        // A transport or broker error: what was read is still good; the error comes back on a
        // later Poll if it persists.
        if (!messages.empty()) return messages;
        return MakeError(ErrorCode::kUnavailable, "kafka: consume failed: " + message->errstr());
    }
  }
  return messages;
}

domain::Status KafkaSource::Commit(const PartitionOffsets& applied) {
  if (closed_) return MakeError(ErrorCode::kUnavailable, "kafka: source closed");
  kafka_client::PartitionList offsets;
  for (const auto& [partition, offset] : applied) {
    if (!assigned_.contains(partition)) {
      spdlog::info("kafka: not committing offset {} of partition {}: not assigned to this member",
                   offset, partition);
      continue;
    }
    // Kafka's committed offset is the next one to read.
    offsets.Add(options_.topic, partition, static_cast<std::int64_t>(offset) + 1);
  }
  if (offsets.get().empty()) return {};
  const RdKafka::ErrorCode code = consumer_->commitSync(offsets.get());
  if (code != RdKafka::ERR_NO_ERROR) {
    return CommitFailed(code, "kafka: commit failed: " + RdKafka::err2str(code));
  }
  for (const RdKafka::TopicPartition* partition : offsets.get()) {
    if (partition->err() != RdKafka::ERR_NO_ERROR) {
      return CommitFailed(partition->err(),
                          fmt::format("kafka: commit of partition {} failed: {}",
                                      partition->partition(), RdKafka::err2str(partition->err())));
    }
  }
  return {};
}

domain::Status KafkaSource::DeadLetter(const ConsumedMessage& message, const std::string& reason) {
  namespace json = boost::json;
  json::object record;
  record["reason"] = reason;
  record["topic"] = options_.topic;
  record["partition"] = message.partition;
  record["offset"] = message.offset;
  record["payload"] = message.payload;
  std::string text = json::serialize(record);
  // Boost.JSON writes a string's bytes as they are: bytes that are not UTF-8 would make the
  // record unreadable, so they go as hex instead.
  boost::system::error_code invalid;
  json::parse(text, invalid);
  if (invalid) {
    record.erase("payload");
    record["payload_hex"] = Hex(message.payload);
    text = json::serialize(record);
  }
  const std::string key = fmt::format("{}-{}-{}", options_.topic, message.partition, message.offset);
  DeadLetterReport report;
  const RdKafka::ErrorCode queued = dead_letters_->produce(
      options_.dead_letter_topic, RdKafka::Topic::PARTITION_UA, RdKafka::Producer::RK_MSG_COPY,
      text.data(), text.size(), key.data(), key.size(), 0, &report);
  if (queued != RdKafka::ERR_NO_ERROR) {
    return MakeError(ErrorCode::kUnavailable,
                     "kafka: cannot queue a dead letter: " + RdKafka::err2str(queued));
  }
  // message.timeout.ms = request_timeout bounds the wait; past it (plus a margin) the message is
  // purged, whose report arrives at the next poll, so `report` is never written after we return.
  dead_letters_->flush(static_cast<int>(options_.request_timeout.count()) + 1000);
  if (!report.reported) {
    dead_letters_->purge(RdKafka::Producer::PURGE_QUEUE | RdKafka::Producer::PURGE_INFLIGHT);
    while (!report.reported) dead_letters_->poll(100);
  }
  if (report.code != RdKafka::ERR_NO_ERROR) {
    return MakeError(ErrorCode::kUnavailable, "kafka: dead letter not acknowledged: " + report.reason);
  }
  return {};
}

std::optional<std::uint64_t> KafkaSource::Lag() {
  if (closed_ || assigned_.empty()) return std::nullopt;
  const int timeout = static_cast<int>(options_.request_timeout.count());
  kafka_client::PartitionList positions;
  for (std::int32_t partition : assigned_) {
    positions.Add(options_.topic, partition, RdKafka::Topic::OFFSET_INVALID);
  }
  if (consumer_->position(positions.get()) != RdKafka::ERR_NO_ERROR) return std::nullopt;
  // Where nothing was read yet, the group's committed offset is where reading will start.
  kafka_client::PartitionList committed;
  for (std::int32_t partition : assigned_) {
    committed.Add(options_.topic, partition, RdKafka::Topic::OFFSET_INVALID);
  }
  if (consumer_->committed(committed.get(), timeout) != RdKafka::ERR_NO_ERROR) return std::nullopt;
  std::uint64_t lag = 0;
  for (std::size_t i = 0; i < positions.get().size(); ++i) {
    const std::int32_t partition = positions.get()[i]->partition();
    std::int64_t low = -1;
    std::int64_t high = -1;
    if (consumer_->get_watermark_offsets(options_.topic, partition, &low, &high) !=
            RdKafka::ERR_NO_ERROR ||
        high < 0 || low < 0) {
      if (consumer_->query_watermark_offsets(options_.topic, partition, &low, &high, timeout) !=
          RdKafka::ERR_NO_ERROR) {
        return std::nullopt;
      }
    }
    std::int64_t position = positions.get()[i]->offset();
    if (position < 0) position = committed.get()[i]->offset();
    if (position < 0) position = low;  // auto.offset.reset=earliest
    lag += static_cast<std::uint64_t>(std::max<std::int64_t>(0, high - position));
  }
  return lag;
}

void KafkaSource::Close() {
  if (closed_) return;
  closed_ = true;
  consumer_->close();  // leaves the group; the revoke runs the rebalance callback here
  assigned_.clear();
  dead_letters_->flush(1000);
}

}  // namespace redpacket::bus
