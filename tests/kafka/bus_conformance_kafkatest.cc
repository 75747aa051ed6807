// The contract of bus.h that every bus must keep, as a typed suite: one factory per
// implementation (KafkaBus here; the local journal can add its own). What goes in comes out
// exactly as sent, in order per receiving user; commits are resumed; uncommitted messages come
// again; malformed messages are set aside with their reason.
#include <algorithm>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include "bus/bus.h"
#include "bus/kafka/kafka_sink.h"
#include "bus/kafka/kafka_source.h"
#include "kafka_test_support.h"

namespace redpacket::bus {
namespace {

using domain::LedgerEvent;
using namespace std::chrono_literals;
using testing::Counter;

// The factory of the Kafka bus: sinks and sources on the fixture's broker.
class KafkaBus {
 public:
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

template <class Bus>
class BusConformance : public ::testing::Test {
 protected:
  // `count` grabs for `users` receivers on packets of this test only, in the order they will
  // be published: user u's grabs are on packets base, base+1, ... in that order.
  std::vector<LedgerEvent> MakeGrabs(int users, int per_user) {
    std::vector<LedgerEvent> events;
    const std::int64_t base = testing::UniqueId();
    const std::int64_t first_user = testing::UniqueId();
    for (int round = 0; round < per_user; ++round) {
      for (int user = 0; user < users; ++user) {
        events.push_back(LedgerEvent{LedgerEvent::Type::kGrab, base + round, first_user + user,
                                     100 + round, user + 1, 1795627746123 + round});
        packets_.insert(base + round);
      }
    }
    return events;
  }
  LedgerEvent MakeRefund() {
    const std::int64_t packet = testing::UniqueId();
    packets_.insert(packet);
    return LedgerEvent{LedgerEvent::Type::kRefund, packet, testing::UniqueId(), 0, 0, 1795627746000};
  }

  // Publishes every event and waits until each is durable.
  void PublishAll(EventSink& sink, const std::vector<LedgerEvent>& events) {
    Counter done;
    for (const LedgerEvent& event : events) {
      sink.Publish(event, [&] { done.Add(); }, [](const domain::Error& error) {
        ADD_FAILURE() << error.message;
      });
    }
    ASSERT_TRUE(done.WaitFor(static_cast<int>(events.size()), 20s)) << done.count();
  }

  // Polls until `wanted` events of this test arrived (or `timeout` passed); returns those of this
  // test in arrival order, and in `polled` the last offset seen per partition (all messages).
  std::vector<LedgerEvent> ConsumeOurs(EventSource& source, std::size_t wanted,
                                       domain::PartitionOffsets* polled = nullptr,
                                       std::chrono::milliseconds timeout = 30s) {
    std::vector<LedgerEvent> ours;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (ours.size() < wanted && std::chrono::steady_clock::now() < deadline) {
      auto messages = source.Poll(500, 500ms);
      if (!messages.ok()) continue;  // transient (e.g. while joining the group)
      for (const ConsumedMessage& message : *messages) {
        if (polled != nullptr) (*polled)[message.partition] = message.offset;
        if (message.event && packets_.contains(message.event->packet_id)) {
          ours.push_back(*message.event);
        }
      }
    }
    return ours;
  }

  std::string UniqueGroup() { return "test-group-" + std::to_string(testing::UniqueId()); }

  Bus bus_;
  std::set<domain::PacketId> packets_;  // the packets of this test
};

using BusImplementations = ::testing::Types<KafkaBus>;
TYPED_TEST_SUITE(BusConformance, BusImplementations);

TYPED_TEST(BusConformance, EveryEventComesBackExactlyAsSentInOrderPerUser) {
  auto sink = this->bus_.MakeSink();
  std::vector<LedgerEvent> sent = this->MakeGrabs(/*users=*/25, /*per_user=*/8);
  sent.push_back(this->MakeRefund());
  this->PublishAll(*sink, sent);

  auto source = this->bus_.MakeSource(this->UniqueGroup());
  std::vector<LedgerEvent> received = this->ConsumeOurs(*source, sent.size());
  ASSERT_EQ(received.size(), sent.size());
  auto sorted = [](std::vector<LedgerEvent> events) {
    std::sort(events.begin(), events.end(), [](const LedgerEvent& a, const LedgerEvent& b) {
      return a.EventId() < b.EventId();
    });
    return events;
  };
  EXPECT_EQ(sorted(received), sorted(sent));
  // One user's events (one key) arrive in the order they were published.
  auto by_user = [](const std::vector<LedgerEvent>& events) {
    std::map<domain::UserId, std::vector<domain::PacketId>> packets;
    for (const LedgerEvent& event : events) packets[event.user_id].push_back(event.packet_id);
    return packets;
  };
  EXPECT_EQ(by_user(received), by_user(sent));
}

TYPED_TEST(BusConformance, WhenDurableWaitsForEveryEarlierEvent) {
  auto sink = this->bus_.MakeSink();
  Counter done;
  std::uint64_t last_position = 0;
  for (const LedgerEvent& event : this->MakeGrabs(10, 5)) {
    last_position = sink->Append(event, [&] { done.Add(); });
  }
  Counter durable;
  int done_when_durable = -1;
  sink->WhenDurable(last_position, [&] {
    done_when_durable = done.count();
    durable.Add();
  });
  ASSERT_TRUE(durable.WaitFor(1, 20s));
  EXPECT_EQ(done_when_durable, 50);
}

TYPED_TEST(BusConformance, ANewMemberResumesAfterTheCommittedOffsets) {
  const std::string group = this->UniqueGroup();
  auto sink = this->bus_.MakeSink();
  const std::vector<LedgerEvent> first = this->MakeGrabs(10, 2);
  this->PublishAll(*sink, first);
  {
    auto source = this->bus_.MakeSource(group);
    domain::PartitionOffsets polled;
    ASSERT_EQ(this->ConsumeOurs(*source, first.size(), &polled).size(), first.size());
    ASSERT_TRUE(source->Commit(polled).ok());
  }  // leaves the group

  const std::vector<LedgerEvent> second = this->MakeGrabs(10, 2);
  this->PublishAll(*sink, second);
  auto source = this->bus_.MakeSource(group);
  domain::PartitionOffsets polled;
  std::vector<LedgerEvent> received = this->ConsumeOurs(*source, second.size(), &polled);
  // Nothing of the first batch comes again: only the second, each once.
  std::set<std::string> ids;
  for (const LedgerEvent& event : received) ids.insert(event.EventId());
  std::set<std::string> expected;
  for (const LedgerEvent& event : second) expected.insert(event.EventId());
  EXPECT_EQ(received.size(), second.size());
  EXPECT_EQ(ids, expected);

  // Everything read and committed: nothing is left to consume.
  ASSERT_TRUE(source->Commit(polled).ok());
  EXPECT_EQ(this->ConsumeOurs(*source, 1, &polled, 2s).size(), 0u);
  EXPECT_EQ(source->Lag(), std::optional<std::uint64_t>(0));
}

TYPED_TEST(BusConformance, UncommittedMessagesAreDeliveredAgain) {
  const std::string group = this->UniqueGroup();
  auto sink = this->bus_.MakeSink();
  const std::vector<LedgerEvent> sent = this->MakeGrabs(10, 2);
  this->PublishAll(*sink, sent);
  {
    auto source = this->bus_.MakeSource(group);
    ASSERT_EQ(this->ConsumeOurs(*source, sent.size()).size(), sent.size());
  }  // leaves the group without committing
  auto source = this->bus_.MakeSource(group);
  EXPECT_EQ(this->ConsumeOurs(*source, sent.size()).size(), sent.size());
}

TYPED_TEST(BusConformance, AMalformedMessageIsDeadLetteredWithItsReason) {
  const std::string token = std::to_string(testing::UniqueId());
  const std::string not_json = "not an event " + token;
  const std::string not_utf8 = "\xff\xfe" + token;
  this->bus_.WriteRaw(not_json);
  this->bus_.WriteRaw(not_utf8);

  auto source = this->bus_.MakeSource(this->UniqueGroup());
  std::map<std::string, ConsumedMessage> malformed;
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (malformed.size() < 2 && std::chrono::steady_clock::now() < deadline) {
    auto messages = source->Poll(500, 500ms);
    if (!messages.ok()) continue;
    for (const ConsumedMessage& message : *messages) {
      if (message.payload == not_json || message.payload == not_utf8) {
        malformed[message.payload] = message;
      }
    }
  }
  ASSERT_EQ(malformed.size(), 2u);
  for (const auto& [payload, message] : malformed) {
    EXPECT_FALSE(message.event.has_value());
    EXPECT_NE(message.decode_error.find("not JSON"), std::string::npos) << message.decode_error;
    ASSERT_TRUE(source->DeadLetter(message, "test " + token + ": " + message.decode_error).ok());
  }

  auto reader = this->bus_.MakeDeadLetterReader(this->UniqueGroup());
  std::map<std::uint64_t, boost::json::object> records;  // by the dead message's offset
  const auto read_deadline = std::chrono::steady_clock::now() + 30s;
  while (records.size() < 2 && std::chrono::steady_clock::now() < read_deadline) {
    auto messages = reader->Poll(500, 500ms);
    if (!messages.ok()) continue;
    for (const ConsumedMessage& message : *messages) {
      boost::json::object record = boost::json::parse(message.payload).as_object();
      std::string reason(record.at("reason").as_string());
      if (reason.starts_with("test " + token)) {
        records[record.at("offset").to_number<std::uint64_t>()] = record;
      }
    }
  }
  ASSERT_EQ(records.size(), 2u);
  for (const auto& [payload, message] : malformed) {
    ASSERT_TRUE(records.contains(message.offset));
    const boost::json::object& record = records.at(message.offset);
    EXPECT_EQ(record.at("reason").as_string(), "test " + token + ": " + message.decode_error);
    EXPECT_EQ(record.at("topic").as_string(), "red_packet_transactions");
    EXPECT_EQ(record.at("partition").to_number<std::int64_t>(), message.partition);
    EXPECT_EQ(record.at("offset").to_number<std::uint64_t>(), message.offset);
    if (payload == not_json) {
      EXPECT_EQ(record.at("payload").as_string(), not_json);
    } else {
      EXPECT_EQ(record.at("payload_hex").as_string(), "fffe" + [&] {
        std::string hex;
        for (char digit : token) hex += "3" + std::string(1, digit);
        return hex;
      }());
    }
  }
}

}  // namespace
}  // namespace redpacket::bus
