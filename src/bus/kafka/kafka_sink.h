// The service's EventSink in cluster mode: an idempotent Kafka producer (acks=all) writing each
// event's JSON to red_packet_transactions, keyed by the receiving user. Thread-safe: Publish,
// Append and WhenDurable from any thread, never blocking; completions run on the sink's own
// delivery thread. Connect() and Close() block.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "bus/bus.h"
#include "threads/task_thread.h"

namespace RdKafka {
class Producer;
}

namespace redpacket::bus {

struct KafkaSinkOptions {
  std::string brokers = "127.0.0.1:9092";  // what scripts/kafka starts
  std::string topic = "red_packet_transactions";
  // How long an event may wait for the broker's ack before `failed` runs (the relay then leaves
  // it in the outbox, and its recovery publishes it again later).
  std::chrono::milliseconds message_timeout{30000};
  // How long the producer waits to fill a batch: nobody waits for an event's ack any more (the
  // relay publishes in the background), so batches of hundreds per produce request are worth
  // a few milliseconds.
  std::chrono::milliseconds linger{50};
};

class KafkaSink final : public EventSink, public BusPositions {
 public:
  // Non-blocking: creates the producer and its delivery thread; nothing is checked yet.
  // Throws std::invalid_argument for options librdkafka refuses.
  explicit KafkaSink(KafkaSinkOptions options);
  // Blocking, up to `timeout`: a sink whose broker answered and whose topic exists. Throws
  // std::runtime_error("cannot reach Kafka at 127.0.0.1:9092: <reason>") otherwise (startup).
  static std::unique_ptr<KafkaSink> Connect(KafkaSinkOptions options,
                                            std::chrono::milliseconds timeout);
  ~KafkaSink() override;  // Close()s
  KafkaSink(const KafkaSink&) = delete;
  KafkaSink& operator=(const KafkaSink&) = delete;

  // Exactly one of `done` (the broker acked with acks=all) or `failed` (kUnavailable: not acked
  // within message_timeout, or the local queue is full) runs, on the delivery thread; after
  // Close() `failed` runs at once on the calling thread. Events of one user (one key, one
  // partition) are acked in the order published.
  void Publish(const domain::LedgerEvent& event, Completion done, Failure failed) override;
  // Publish whose failure is logged (an error) and otherwise dropped: `done` never runs then.
  // Returns 0: Kafka has no global order.
  std::uint64_t Append(const domain::LedgerEvent& event, Completion done) override;
  // `position` is ignored (always 0 with Kafka): `done` runs once every event published before
  // this call is settled (acked or failed) - at once on the calling thread if none is pending.
  void WhenDurable(std::uint64_t position, Completion done) override;

  // Publishes raw bytes under `key` (tools and tests: e.g. a malformed message for the worker).
  void PublishRaw(const std::string& key, const std::string& payload, Completion done,
                  Failure failed);

  // Blocking, up to `timeout`: waits for every pending event to be acked, fails what is left,
  // stops the delivery thread. Later publishes fail at once. Idempotent.
  void Close(std::chrono::milliseconds timeout = std::chrono::seconds(10));

  // Blocking, up to `timeout`: each partition's high watermark (the offset the next message gets:
  // every message acknowledged so far is below it). kUnavailable when the broker does not answer.
  domain::Result<PartitionOffsets> EndOffsets(std::chrono::milliseconds timeout) override;

  // Events published and not yet settled (a metric).
  std::size_t pending() const;

  // Blocking, up to `timeout`: ok when a broker answers and the topic exists (for /readyz);
  // kUnavailable with the reason otherwise. Call from a non-I/O thread.
  domain::Status CheckHealth(std::chrono::milliseconds timeout);

 private:
  struct Delivery;
  class DeliveryReports;

  void Settle(std::uint64_t ticket);
  void ServeDeliveryReports();  // a tick of delivery_thread_

  KafkaSinkOptions options_;
  std::unique_ptr<DeliveryReports> reports_;
  std::unique_ptr<RdKafka::Producer> producer_;

  mutable std::mutex mutex_;
  std::uint64_t next_ticket_ = 1;
  std::set<std::uint64_t> unsettled_;                     // tickets published, not yet settled
  std::multimap<std::uint64_t, Completion> waiters_;      // last ticket before the call -> done
  std::deque<std::function<void()>> immediate_failures_;  // run on the delivery thread
  bool closed_ = false;

  std::unique_ptr<threads::TaskThread> delivery_thread_;  // "rp-kafka-dr": polls, back to back
};

}  // namespace redpacket::bus
