// The worker's EventSource in cluster mode: a Kafka consumer group member on
// red_packet_transactions with manual offset commits, and a producer for the dead-letter topic.
// Every call blocks (up to the time it is given) and must come from one thread at a time, the
// worker's; rebalances are handled inside Poll() on that thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "bus/bus.h"

namespace RdKafka {
class KafkaConsumer;
class Producer;
}  // namespace RdKafka

namespace redpacket::bus {

struct KafkaSourceOptions {
  std::string brokers = "127.0.0.1:9092";  // what scripts/kafka starts
  std::string topic = "red_packet_transactions";
  std::string dead_letter_topic = "red_packet_transactions.dlq";
  std::string group_id = "redpacket-worker";
  // A member silent this long is presumed dead and its partitions go to the others.
  std::chrono::milliseconds session_timeout{6000};
  // A member that does not poll for this long leaves the group (its partitions go to the
  // others); also how long a rebalance waits for a member that does not rejoin. The worker
  // polls between batches, and a batch retried longer than this is redelivered elsewhere.
  std::chrono::milliseconds max_poll_interval{15000};
  // How long DeadLetter() and Commit() wait for the broker.
  std::chrono::milliseconds request_timeout{5000};
};

class KafkaSource final : public EventSource {
 public:
  // Non-blocking: creates the consumer (subscribed; it joins the group on the first Poll) and
  // the dead-letter producer. Throws std::invalid_argument for options librdkafka refuses.
  explicit KafkaSource(KafkaSourceOptions options);
  // Blocking, up to `timeout`: a source whose broker answered and whose topic exists. Throws
  // std::runtime_error("cannot reach Kafka at 127.0.0.1:9092: <reason>") otherwise (startup).
  static std::unique_ptr<KafkaSource> Connect(KafkaSourceOptions options,
                                              std::chrono::milliseconds timeout);
  ~KafkaSource() override;  // Close()s
  KafkaSource(const KafkaSource&) = delete;
  KafkaSource& operator=(const KafkaSource&) = delete;

  // Waits up to `wait` for the first message, then takes what is already fetched, up to
  // `max_messages`. Offsets are Kafka's. A message that is not an event of the contract comes
  // back with decode_error set (the worker dead-letters it). kUnavailable when the broker fails
  // and nothing was read.
  domain::Result<std::vector<ConsumedMessage>> Poll(std::size_t max_messages,
                                                    std::chrono::milliseconds wait) override;
  // Commits offset + 1 of each partition, synchronously. Partitions this member no longer owns
  // (revoked in a rebalance) are skipped: their new owner re-reads them, and applying is
  // idempotent. kConflict when the group moved on (this member left it for not polling within
  // max_poll_interval, or a rebalance is under way: the commit can never pass, and the member
  // rejoins by polling); kUnavailable when the broker refuses otherwise or does not answer.
  domain::Status Commit(const PartitionOffsets& applied) override;
  // Produces {"reason","topic","partition","offset","payload"} (or "payload_hex" when the bytes
  // are not UTF-8) to the dead-letter topic and waits for its ack (acks=all).
  domain::Status DeadLetter(const ConsumedMessage& message, const std::string& reason) override;
  // The sum over assigned partitions of high watermark - position (the committed offset before
  // anything was read). nullopt while nothing is assigned or a watermark is unknown.
  std::optional<std::uint64_t> Lag() override;

  // The partitions this member owns now.
  std::set<std::int32_t> assignment() const { return assigned_; }

  // Blocking: leaves the group (its partitions go to the others at once). Commits nothing.
  // Idempotent; Poll after Close fails.
  void Close();

 private:
  class Callbacks;
  friend class Callbacks;

  KafkaSourceOptions options_;
  std::unique_ptr<Callbacks> callbacks_;
  std::unique_ptr<RdKafka::KafkaConsumer> consumer_;
  std::unique_ptr<RdKafka::Producer> dead_letters_;
  std::set<std::int32_t> assigned_;  // kept by the rebalance callback (on the Poll thread)
  bool closed_ = false;
};

}  // namespace redpacket::bus
