// Shared librdkafka plumbing of the Kafka sink and source (see kafka_client.h).
#include "bus/kafka/kafka_client.h"

#include <stdexcept>

#include <spdlog/spdlog.h>

namespace redpacket::bus::kafka_client {

void LogEvents::event_cb(RdKafka::Event& event) {
  switch (event.type()) {
    case RdKafka::Event::EVENT_ERROR:
      // ERR__ALL_BROKERS_DOWN and transport errors repeat while a broker is away; librdkafka
      // already suppresses identical lines, so each is worth a warning.
      spdlog::log(event.fatal() ? spdlog::level::err : spdlog::level::warn, "kafka: {} ({})",
                  event.str(), RdKafka::err2str(event.err()));
      break;
    case RdKafka::Event::EVENT_LOG: {
      // A connection failure is logged as "FAIL" and also raised as an error event (above):
      // once is enough.
      if (event.fac() == "FAIL") {
        spdlog::debug("kafka: {} {}", event.fac(), event.str());
        break;
      }
      const int severity = event.severity();
      const auto level = severity <= RdKafka::Event::EVENT_SEVERITY_ERROR     ? spdlog::level::err
                         : severity <= RdKafka::Event::EVENT_SEVERITY_WARNING ? spdlog::level::warn
                         : severity <= RdKafka::Event::EVENT_SEVERITY_INFO    ? spdlog::level::info
                                                                              : spdlog::level::debug;
      spdlog::log(level, "kafka: {} {}", event.fac(), event.str());
      break;
    }
    default:
      break;
  }
}

std::unique_ptr<RdKafka::Conf> MakeConf(const std::map<std::string, std::string>& properties) {
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  std::string error;
  for (const auto& [name, value] : properties) {
    if (conf->set(name, value, error) != RdKafka::Conf::CONF_OK) {
      throw std::invalid_argument("kafka: cannot set " + name + "=" + value + ": " + error);
    }
  }
  return conf;
}

domain::Status CheckTopic(RdKafka::Handle& handle, const std::string& topic,
                          std::chrono::milliseconds timeout) {
  std::string error;
  std::unique_ptr<RdKafka::Topic> topic_handle(
      RdKafka::Topic::create(&handle, topic, nullptr, error));
  if (!topic_handle) return domain::MakeError(domain::ErrorCode::kInternal, error);
  RdKafka::Metadata* raw_metadata = nullptr;
  const RdKafka::ErrorCode code =
      handle.metadata(false, topic_handle.get(), &raw_metadata, static_cast<int>(timeout.count()));
  std::unique_ptr<RdKafka::Metadata> metadata(raw_metadata);
  if (code != RdKafka::ERR_NO_ERROR) {
    return domain::MakeError(domain::ErrorCode::kUnavailable, RdKafka::err2str(code));
  }
  for (const RdKafka::TopicMetadata* found : *metadata->topics()) {
    if (found->topic() != topic) continue;
    if (found->err() != RdKafka::ERR_NO_ERROR) {
      return domain::MakeError(domain::ErrorCode::kUnavailable,
                               "topic " + topic + ": " + RdKafka::err2str(found->err()));
    }
    if (found->partitions()->empty()) {
      return domain::MakeError(domain::ErrorCode::kUnavailable, "topic " + topic + " has no partitions");
    }
    return {};
  }
  return domain::MakeError(domain::ErrorCode::kUnavailable, "topic " + topic + " does not exist");
}

}  // namespace redpacket::bus::kafka_client
