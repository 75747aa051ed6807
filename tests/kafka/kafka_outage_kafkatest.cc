// The Kafka sink when no broker answers: Connect refuses to start, a publish fails within its
// timeout (so a grab answers 503 quickly) and never succeeds late, and publishing resumes once
// the broker is back. Stops and restarts the fixture's broker (scripts/kafka down, up).
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <stdexcept>

#include <gtest/gtest.h>

#include "bus/kafka/kafka_sink.h"
#include "bus/kafka/kafka_source.h"
#include "kafka_test_support.h"

namespace redpacket::bus {
namespace {

using domain::LedgerEvent;
using namespace std::chrono_literals;
using testing::Counter;

// A loopback port with nothing listening (bound, then released).
std::string FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address);
  socklen_t length = sizeof address;
  getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  close(fd);
  return std::to_string(ntohs(address.sin_port));
}

LedgerEvent AGrab() {
  return LedgerEvent{LedgerEvent::Type::kGrab, testing::UniqueId(), testing::UniqueId(), 1, 1,
                     1795627746123};
}

struct Outcome {
  Counter done;
  Counter failed;
  std::string reason;
};

void Publish(KafkaSink& sink, Outcome& outcome) {
  sink.Publish(AGrab(), [&] { outcome.done.Add(); }, [&](const domain::Error& error) {
    EXPECT_EQ(error.code, domain::ErrorCode::kUnavailable);
    outcome.reason = error.message;
    outcome.failed.Add();
  });
}

TEST(KafkaOutage, ConnectThrowsWhenNoBrokerAnswers) {
  const std::string brokers = "127.0.0.1:" + FreePort();
  KafkaSinkOptions sink_options;
  sink_options.brokers = brokers;
  try {
    KafkaSink::Connect(sink_options, 1500ms);
    FAIL() << "connected to nothing";
  } catch (const std::runtime_error& error) {
    EXPECT_NE(std::string(error.what()).find("cannot reach Kafka at " + brokers + ": "),
              std::string::npos)
        << error.what();
  }
  KafkaSourceOptions source_options;
  source_options.brokers = brokers;
  EXPECT_THROW(KafkaSource::Connect(source_options, 1500ms), std::runtime_error);
}

TEST(KafkaOutage, PublishWithNoBrokerFailsWithinItsTimeoutAndNeverSucceeds) {
  KafkaSinkOptions options;
  options.brokers = "127.0.0.1:" + FreePort();
  options.message_timeout = 1500ms;
  KafkaSink sink(options);
  Outcome outcome;
  const auto start = std::chrono::steady_clock::now();
  Publish(sink, outcome);
  ASSERT_TRUE(outcome.failed.WaitFor(1, 5s));
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_LT(elapsed, 3s);
  EXPECT_GE(elapsed, 1400ms);
  EXPECT_FALSE(outcome.done.WaitFor(1, 500ms));
  EXPECT_EQ(outcome.failed.count(), 1);
  // WhenDurable does not wait for what already failed.
  Counter durable;
  sink.WhenDurable(0, [&] { durable.Add(); });
  EXPECT_TRUE(durable.WaitFor(1, 1s));
}

TEST(KafkaOutage, PublishingFailsWhileTheBrokerIsDownAndResumesWhenItIsBack) {
  KafkaSinkOptions options;
  options.brokers = testing::KafkaBrokers();
  options.message_timeout = 3000ms;
  auto sink = KafkaSink::Connect(options, 10s);
  Outcome before;
  Publish(*sink, before);
  ASSERT_TRUE(before.done.WaitFor(1, 10s)) << before.reason;

  ASSERT_EQ(testing::RunKafkaScript("down"), 0);
  Outcome during;
  const auto start = std::chrono::steady_clock::now();
  Publish(*sink, during);
  ASSERT_TRUE(during.failed.WaitFor(1, 8s));
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
  EXPECT_NE(during.reason.find("not acknowledged"), std::string::npos) << during.reason;
  EXPECT_EQ(during.done.count(), 0);

  ASSERT_EQ(testing::RunKafkaScript("up"), 0);
  // The same sink reconnects by itself; a publish issued right away may still time out while
  // it does, so try until one is acknowledged.
  const auto back = std::chrono::steady_clock::now();
  bool acknowledged = false;
  while (!acknowledged && std::chrono::steady_clock::now() - back < 30s) {
    Outcome after;
    Publish(*sink, after);
    acknowledged = after.done.WaitFor(1, 4s);
    if (!acknowledged) after.failed.WaitFor(1, 4s);
  }
  EXPECT_TRUE(acknowledged);
  EXPECT_EQ(during.done.count(), 0);  // the failed one never turns into a success
}

}  // namespace
}  // namespace redpacket::bus
