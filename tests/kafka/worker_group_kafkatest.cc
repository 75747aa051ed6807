// The worker in its consumer group against a real broker, when it does not poll for longer than
// max.poll.interval.ms: an apply that hangs (what a SIGSTOPped worker does to the group) and a
// ledger that fails every write for that long. librdkafka then leaves the group; the offset
// commit that follows can never pass, and the worker must drop it and poll again (which is how
// it rejoins) instead of retrying it forever: every event is still credited, the redelivered
// ones once.
#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "applier/applier.h"
#include "bus/kafka/kafka_sink.h"
#include "bus/kafka/kafka_source.h"
#include "kafka_test_support.h"

namespace redpacket::bus {
namespace {

using domain::LedgerEvent;
using namespace std::chrono_literals;
using testing::Counter;

// Applies everything (each event once, by its id); this test's packet's events are counted. The
// next ApplyEvents may hang (`Hang`) or every write may fail (`FailFor`) for a while.
class RecordingLedger final : public ledger::LedgerWriter {
 public:
  explicit RecordingLedger(domain::PacketId packet) : packet_(packet) {}
  domain::Status Migrate() override { return {}; }
  domain::Result<ledger::UserRecord> CreateUser(std::string_view) override { return Unused(); }
  domain::Result<domain::Cents> Deposit(domain::UserId, domain::Cents, std::string_view) override {
    return Unused();
  }
  domain::Result<ledger::PacketRecord> CreatePacket(const domain::PacketSpec&,
                                                    const std::vector<domain::Cents>&,
                                                    domain::TimePoint, domain::TimePoint,
                                                    std::string_view) override {
    return Unused();
  }
  domain::Status ApplyEvents(std::span<const LedgerEvent> events,
                             const domain::PartitionOffsets&) override {
    std::chrono::milliseconds hang{0};
    {
      std::lock_guard lock(mutex_);
      if (std::chrono::steady_clock::now() < failing_until_) {
        return domain::MakeError(domain::ErrorCode::kUnavailable, "injected: the ledger is down");
      }
      bool ours = false;
      for (const LedgerEvent& event : events) ours = ours || event.packet_id == packet_;
      if (ours) std::swap(hang, next_hang_);
    }
    std::this_thread::sleep_for(hang);  // a worker stopped in the middle of its batch
    std::lock_guard lock(mutex_);
    for (const LedgerEvent& event : events) {
      if (event.packet_id != packet_) continue;
      ++deliveries_;
      credited_.insert(event.EventId());
    }
    return {};
  }
  // Other tests' messages in the topic may be poison: kept (here: nowhere), never a reason to stop.
  domain::Status SetAside(const ledger::SetAsideRecord&, const domain::PartitionOffsets&) override {
    return {};
  }
  domain::Result<domain::PartitionOffsets> AppliedOffsets() override {
    return domain::PartitionOffsets{};
  }

  void Hang(std::chrono::milliseconds hang) {
    std::lock_guard lock(mutex_);
    next_hang_ = hang;
  }
  void FailFor(std::chrono::milliseconds outage) {
    std::lock_guard lock(mutex_);
    failing_until_ = std::chrono::steady_clock::now() + outage;
  }
  std::size_t credited() {
    std::lock_guard lock(mutex_);
    return credited_.size();
  }
  int deliveries() {
    std::lock_guard lock(mutex_);
    return deliveries_;
  }

 private:
  static domain::Error Unused() {
    return domain::MakeError(domain::ErrorCode::kInternal, "not used by the worker");
  }
  const domain::PacketId packet_;
  std::mutex mutex_;
  std::set<std::string> credited_;
  int deliveries_ = 0;
  std::chrono::milliseconds next_hang_{0};
  std::chrono::steady_clock::time_point failing_until_{};
};

class WorkerGroupTest : public ::testing::Test {
 protected:
  void SetUp() override {
    KafkaSinkOptions sink_options;
    sink_options.brokers = testing::KafkaBrokers();
    sink_ = KafkaSink::Connect(sink_options, 10s);
    KafkaSourceOptions options;
    options.brokers = testing::KafkaBrokers();
    options.group_id = "test-worker-group-" + std::to_string(testing::UniqueId());
    // The shortest the broker takes (at least the session timeout): the pauses below outlast it.
    options.session_timeout = 6000ms;
    options.max_poll_interval = 6000ms;
    source_ = KafkaSource::Connect(options, 10s);
    applier::ApplierOptions worker_options;
    worker_options.max_batch_events = 500;
    worker_options.poll_wait = 100ms;
    worker_ = std::make_unique<applier::Applier>(*source_, ledger_, worker_options);
    worker_->Start();
  }
  void TearDown() override {
    worker_->Stop();
    source_->Close();
  }

  // Publishes `count` grabs of the test's packet and waits for the broker's acks.
  void Publish(int count) {
    Counter acked;
    for (int i = 0; i < count; ++i) {
      ++published_;
      sink_->Publish(LedgerEvent{LedgerEvent::Type::kGrab, packet_, first_user_ + published_, 1,
                                 published_, 1795627746123},
                     [&] { acked.Add(); },
                     [](const domain::Error& error) { ADD_FAILURE() << error.message; });
    }
    ASSERT_TRUE(acked.WaitFor(count, 20s));
  }
  void WaitCredited(std::size_t count, std::chrono::seconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (ledger_.credited() < count && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(50ms);
    }
    ASSERT_EQ(ledger_.credited(), count) << "commits dropped " << worker_->stats().commits_dropped;
  }

  const domain::PacketId packet_ = testing::UniqueId();
  const domain::UserId first_user_ = testing::UniqueId();
  std::int64_t published_ = 0;
  RecordingLedger ledger_{packet_};
  std::unique_ptr<KafkaSink> sink_;
  std::unique_ptr<KafkaSource> source_;
  std::unique_ptr<applier::Applier> worker_;
};

TEST_F(WorkerGroupTest, AWorkerStoppedPastItsPollIntervalRejoinsAndCreditsEverything) {
  Publish(20);
  WaitCredited(20, 60s);
  ledger_.Hang(9s);  // the next batch of ours: the worker stops polling for 9 s
  Publish(20);
  std::this_thread::sleep_for(9s);
  Publish(20);
  WaitCredited(60, 90s);
  EXPECT_GE(worker_->stats().commits_dropped, 1u);
  EXPECT_GE(ledger_.deliveries(), 60);
}

TEST_F(WorkerGroupTest, ALedgerDownLongerThanThePollIntervalDoesNotStopTheWorkerForGood) {
  Publish(20);
  WaitCredited(20, 60s);
  ledger_.FailFor(9s);
  Publish(20);
  std::this_thread::sleep_for(3s);
  EXPECT_TRUE(worker_->stall().has_value()) << "the worker should say it is stalled";
  std::this_thread::sleep_for(6s);
  Publish(20);
  WaitCredited(60, 90s);
  EXPECT_FALSE(worker_->stall().has_value());
}

}  // namespace
}  // namespace redpacket::bus
