// The Kafka source in a group of two: the partitions are split between the members (a rebalance
// revokes and reassigns them), every event reaches exactly one member, a commit of a partition
// the member no longer owns is skipped, and the lag is read from the watermarks.
#include <set>
#include <string>

#include <gtest/gtest.h>

#include "bus/kafka/kafka_sink.h"
#include "bus/kafka/kafka_source.h"
#include "kafka_test_support.h"

namespace redpacket::bus {
namespace {

using domain::LedgerEvent;
using namespace std::chrono_literals;
using testing::Counter;

std::unique_ptr<KafkaSource> Member(const std::string& group) {
  KafkaSourceOptions options;
  options.brokers = testing::KafkaBrokers();
  options.group_id = group;
  options.session_timeout = 6000ms;
  return KafkaSource::Connect(options, 10s);
}

// Event ids of this test's packets among what a poll returned.
void Collect(KafkaSource& source, const std::set<domain::PacketId>& packets,
             std::multiset<std::string>* ids) {
  auto messages = source.Poll(500, 200ms);
  if (!messages.ok()) return;
  for (const ConsumedMessage& message : *messages) {
    if (message.event && packets.contains(message.event->packet_id)) {
      ids->insert(message.event->EventId());
    }
  }
}

TEST(KafkaSourceGroup, TwoMembersSplitThePartitionsAndEachEventReachesOne) {
  const std::string group = "test-group-" + std::to_string(testing::UniqueId());
  auto first = Member(group);
  std::multiset<std::string> ids;
  std::set<domain::PacketId> packets;
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (first->assignment().size() < 6 && std::chrono::steady_clock::now() < deadline) {
    Collect(*first, packets, &ids);
  }
  ASSERT_EQ(first->assignment().size(), 6u);
  ASSERT_TRUE(first->Lag().has_value());

  auto second = Member(group);
  auto split = [&] {
    const std::set<std::int32_t> mine = first->assignment();
    const std::set<std::int32_t> theirs = second->assignment();
    std::set<std::int32_t> all = mine;
    all.insert(theirs.begin(), theirs.end());
    return !mine.empty() && !theirs.empty() && mine.size() + theirs.size() == 6 && all.size() == 6;
  };
  while (!split() && std::chrono::steady_clock::now() < deadline) {
    Collect(*first, packets, &ids);
    Collect(*second, packets, &ids);
  }
  ASSERT_TRUE(split()) << first->assignment().size() << " + " << second->assignment().size();

  // A commit for a partition that went to the other member is skipped, not an error.
  const std::int32_t not_mine = *second->assignment().begin();
  EXPECT_TRUE(first->Commit({{not_mine, 0}}).ok());

  KafkaSinkOptions sink_options;
  sink_options.brokers = testing::KafkaBrokers();
  auto sink = KafkaSink::Connect(sink_options, 10s);
  Counter acked;
  const std::int64_t packet = testing::UniqueId();
  packets.insert(packet);
  const std::int64_t first_user = testing::UniqueId();
  const int kEvents = 60;
  for (int i = 0; i < kEvents; ++i) {
    sink->Publish(LedgerEvent{LedgerEvent::Type::kGrab, packet, first_user + i, 1, i + 1, 0},
                  [&] { acked.Add(); }, [](const domain::Error& error) {
                    ADD_FAILURE() << error.message;
                  });
  }
  ASSERT_TRUE(acked.WaitFor(kEvents, 20s));
  while (ids.size() < kEvents && std::chrono::steady_clock::now() < deadline + 20s) {
    Collect(*first, packets, &ids);
    Collect(*second, packets, &ids);
  }
  EXPECT_EQ(ids.size(), static_cast<std::size_t>(kEvents));
  EXPECT_EQ(std::set<std::string>(ids.begin(), ids.end()).size(), ids.size()) << "a duplicate";
}

}  // namespace
}  // namespace redpacket::bus
