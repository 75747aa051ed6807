// What the Kafka sink and source share: building a librdkafka configuration, routing its logs to
// spdlog, and the metadata check that a broker answers and a topic exists. Internal to bus/kafka.
// Functions here block only where they say so; they are thread-safe.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <librdkafka/rdkafkacpp.h>

#include "domain/status.h"

namespace redpacket::bus::kafka_client {

// librdkafka's log lines and client-level errors (broker down, ...) go to spdlog as "kafka: ...".
class LogEvents final : public RdKafka::EventCb {
 public:
  void event_cb(RdKafka::Event& event) override;
};

// A global configuration with these properties. A property librdkafka refuses is a programming
// or configuration error: std::invalid_argument (startup only).
std::unique_ptr<RdKafka::Conf> MakeConf(const std::map<std::string, std::string>& properties);

// Blocking, up to `timeout`: asks the brokers for `topic`'s metadata. ok when the topic exists
// with at least one partition; kUnavailable with librdkafka's reason otherwise.
domain::Status CheckTopic(RdKafka::Handle& handle, const std::string& topic,
                          std::chrono::milliseconds timeout);

// Owns the TopicPartition pointers librdkafka's vector APIs take and give.
class PartitionList {
 public:
  PartitionList() = default;
  PartitionList(const PartitionList&) = delete;
  PartitionList& operator=(const PartitionList&) = delete;
  ~PartitionList() { RdKafka::TopicPartition::destroy(partitions_); }
  void Add(const std::string& topic, std::int32_t partition, std::int64_t offset) {
    partitions_.push_back(RdKafka::TopicPartition::create(topic, partition, offset));
  }
  std::vector<RdKafka::TopicPartition*>& get() { return partitions_; }

 private:
  std::vector<RdKafka::TopicPartition*> partitions_;
};

}  // namespace redpacket::bus::kafka_client
