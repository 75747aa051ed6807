// The bus conformance suite (tests/bus/bus_conformance.h) on Kafka: sinks and sources on the
// kafka_broker fixture's broker, one consumer group per member the suite asks for. The same
// cases run on the local journal as a unit test (tests/unit/bus_conformance_journal_test.cc).
#include "tests/bus/bus_conformance.h"

#include "bus/kafka/kafka_sink.h"
#include "bus/kafka/kafka_source.h"
#include "kafka_test_support.h"

namespace redpacket::bus::conformance {
namespace {

// The factory of the Kafka bus: sinks and sources on the fixture's broker.
class KafkaBus {
 public:
  static constexpr bool kCarriesRawBytes = true;

  std::unique_ptr<EventSink> MakeSink() {
    KafkaSinkOptions options;
    options.brokers = testing::KafkaBrokers();
    return KafkaSink::Connect(options, 10s);
  }
  // A member of `group`; a new group starts from the oldest message.
  std::unique_ptr<EventSource> MakeSource(const std::string& group) {
    return KafkaSource::Connect(SourceOptions(group), 10s);
  }
  // Writes bytes that are not necessarily an event where sources read.
  void WriteRaw(const std::string& bytes) {
    KafkaSinkOptions options;
    options.brokers = testing::KafkaBrokers();
    KafkaSink sink(options);
    Counter acked;
    sink.PublishRaw("raw", bytes, [&] { acked.Add(); }, [](const domain::Error& error) {
      ADD_FAILURE() << error.message;
    });
    ASSERT_TRUE(acked.WaitFor(1, 10s));
  }
  std::string Topic() const { return KafkaSourceOptions{}.topic; }
  // A reader of what DeadLetter() set aside (undecodable: each comes with its payload).
  std::unique_ptr<EventSource> MakeDeadLetterReader(const std::string& group) {
    KafkaSourceOptions options = SourceOptions(group);
    options.topic = options.dead_letter_topic;
    return KafkaSource::Connect(options, 10s);
  }

 private:
  static KafkaSourceOptions SourceOptions(const std::string& group) {
    KafkaSourceOptions options;
    options.brokers = testing::KafkaBrokers();
    options.group_id = group;
    options.session_timeout = 6000ms;  // the broker's minimum: a dead member is noticed soon
    return options;
  }
};

}  // namespace

INSTANTIATE_TYPED_TEST_SUITE_P(Kafka, BusConformance, ::testing::Types<KafkaBus>);

}  // namespace redpacket::bus::conformance
