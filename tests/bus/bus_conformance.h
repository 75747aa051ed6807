// The contract of bus.h that every bus keeps, as a typed suite (instantiated for Kafka in
// tests/kafka/bus_conformance_kafkatest.cc, for the local journal in
// tests/unit/bus_conformance_journal_test.cc). What goes in comes out exactly as sent, in order per
// receiving user; WhenDurable waits for every earlier event; a new member resumes after the
// committed offsets; uncommitted messages come again; malformed messages are set aside with their
// reason.
//
// A Bus factory provides:
//   std::unique_ptr<EventSink> MakeSink();
//   std::unique_ptr<EventSource> MakeSource(const std::string& group);  // a new member of
//       `group`; a new group starts from the oldest message
//   static constexpr bool kCarriesRawBytes;  // whether the bus can hold bytes that are not an
//       event at all; if so: void WriteRaw(const std::string&),
//       std::unique_ptr<EventSource> MakeDeadLetterReader(const std::string& group) and
//       std::string Topic() (what a dead-letter record names); if not: kNoRawBytesBecause.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <boost/json.hpp>
#include <chrono>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "bus/bus.h"
#include "tests/support/completions.h"

// The suite's own namespace: instantiate it from inside it.
namespace redpacket::bus::conformance {

using domain::LedgerEvent;
using namespace std::chrono_literals;
using testing_support::Counter;

template <class Bus>
class BusConformance : public ::testing::Test {
 protected:
  // `count` grabs for `users` receivers on packets of this test only, in the order they will
  // be published: user u's grabs are on packets base, base+1, ... in that order.
  std::vector<LedgerEvent> MakeGrabs(int users, int per_user) {
    std::vector<LedgerEvent> events;
    const std::int64_t base = testing_support::UniqueId();
    const std::int64_t first_user = testing_support::UniqueId();
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
    const std::int64_t packet = testing_support::UniqueId();
    packets_.insert(packet);
    return LedgerEvent{LedgerEvent::Type::kRefund, packet, testing_support::UniqueId(), 0, 0, 1795627746000};
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

  std::string UniqueGroup() { return "test-group-" + std::to_string(testing_support::UniqueId()); }

  Bus bus_;
  std::set<domain::PacketId> packets_;  // the packets of this test
};

TYPED_TEST_SUITE_P(BusConformance);

TYPED_TEST_P(BusConformance, EveryEventComesBackExactlyAsSentInOrderPerUser) {
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

TYPED_TEST_P(BusConformance, WhenDurableWaitsForEveryEarlierEvent) {
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

TYPED_TEST_P(BusConformance, ANewMemberResumesAfterTheCommittedOffsets) {
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

TYPED_TEST_P(BusConformance, UncommittedMessagesAreDeliveredAgain) {
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

TYPED_TEST_P(BusConformance, AMalformedMessageIsDeadLetteredWithItsReason) {
  if constexpr (!TypeParam::kCarriesRawBytes) {
    GTEST_SKIP() << TypeParam::kNoRawBytesBecause;
  } else {
  const std::string token = std::to_string(testing_support::UniqueId());
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
    EXPECT_EQ(record.at("topic").as_string(), this->bus_.Topic());
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
}

REGISTER_TYPED_TEST_SUITE_P(BusConformance, EveryEventComesBackExactlyAsSentInOrderPerUser,
                            WhenDurableWaitsForEveryEarlierEvent,
                            ANewMemberResumesAfterTheCommittedOffsets,
                            UncommittedMessagesAreDeliveredAgain,
                            AMalformedMessageIsDeadLetteredWithItsReason);

}  // namespace redpacket::bus::conformance
