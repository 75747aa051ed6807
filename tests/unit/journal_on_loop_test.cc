// Tests of the journal driven by an event loop through io_uring (Journal::StartOnLoop): batches of
// one loop round, completions and listener in position order on the loop's thread, WhenDurable,
// and Stop() finishing the batch in flight and draining the queue on the caller's thread.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <filesystem>
#include <future>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "bus/local/journal.h"

namespace redpacket::bus {
namespace {

namespace asio = boost::asio;
namespace fs = std::filesystem;
using domain::LedgerEvent;

LedgerEvent MakeEvent(std::int64_t i) {
  return LedgerEvent{.type = LedgerEvent::Type::kGrab,
                     .packet_id = 1 + i % 3,
                     .user_id = i,
                     .amount_cents = i,
                     .seq = i,
                     .at_millis = 1'700'000'000'000 + i};
}

class JournalOnLoopTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "rp-journal-loop-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    root_ = pattern;
  }
  void TearDown() override {
    StopLoop();
    fs::remove_all(root_);
  }

  Journal::Options Options() const {
    return Journal::Options{.directory = root_ / "journal", .segment_bytes = 64u << 20};
  }
  void RunLoop() {
    guard_.emplace(io_.get_executor());
    loop_thread_ = std::thread([this] { io_.run(); });
  }
  void StopLoop() {
    guard_.reset();
    io_.stop();
    if (loop_thread_.joinable()) loop_thread_.join();
  }
  std::thread::id loop_id() const { return loop_thread_.get_id(); }

  fs::path root_;
  asio::io_context io_{1};
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> guard_;
  std::thread loop_thread_;
};

TEST_F(JournalOnLoopTest, AppendsFromManyThreadsCompleteInPositionOrderOnTheLoop) {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 2000;
  constexpr std::uint64_t kTotal = std::uint64_t{kThreads} * kPerThread;
  Journal journal(Options());
  ASSERT_TRUE(journal.Recover(0).ok());
  RunLoop();
  std::vector<std::uint64_t> durable_order;   // the loop's thread only
  std::vector<std::int64_t> completion_order;  // the loop's thread only
  std::atomic<int> off_loop{0};
  std::promise<void> all_done;
  ASSERT_TRUE(journal.StartOnLoop(
      [&](std::span<const PositionedEvent> batch) {
        if (std::this_thread::get_id() != loop_id()) ++off_loop;
        for (const PositionedEvent& event : batch) durable_order.push_back(event.position);
      },
      io_));
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        const LedgerEvent event = MakeEvent(t * kPerThread + i + 1);
        journal.Append(event, [&, event] {
          if (std::this_thread::get_id() != loop_id()) ++off_loop;
          completion_order.push_back(event.amount_cents);
          if (completion_order.size() == kTotal) all_done.set_value();
        });
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  ASSERT_EQ(all_done.get_future().wait_for(std::chrono::seconds(60)), std::future_status::ready);
  journal.Stop();
  StopLoop();

  EXPECT_EQ(off_loop.load(), 0);
  EXPECT_EQ(journal.durable_position(), kTotal);
  EXPECT_EQ(journal.queued_events(), 0u);
  EXPECT_LT(journal.batches_written(), kTotal);  // grouped
  ASSERT_EQ(durable_order.size(), kTotal);
  for (std::uint64_t i = 0; i < kTotal; ++i) ASSERT_EQ(durable_order[i], i + 1);
  auto on_disk = Journal::ReadAll(root_ / "journal", 0);
  ASSERT_TRUE(on_disk.ok());
  ASSERT_EQ(on_disk->size(), kTotal);
  ASSERT_EQ(completion_order.size(), kTotal);
  for (std::uint64_t i = 0; i < kTotal; ++i) {
    ASSERT_EQ((*on_disk)[i].event.amount_cents, completion_order[i]);
  }
}

TEST_F(JournalOnLoopTest, AppendsOfOneLoopRoundShareOneFsync) {
  Journal journal(Options());
  ASSERT_TRUE(journal.Recover(0).ok());
  ASSERT_TRUE(journal.StartOnLoop(nullptr, io_));
  RunLoop();
  std::promise<void> done;
  std::atomic<int> completed{0};
  asio::post(io_, [&] {
    // One handler's appends: the flush runs after it, so they make one batch.
    for (std::int64_t i = 1; i <= 100; ++i) {
      journal.Append(MakeEvent(i), [&] {
        if (++completed == 100) done.set_value();
      });
    }
    // Not durable before the handler returns: the reply can only follow the fsync.
    EXPECT_EQ(journal.durable_position(), 0u);
  });
  ASSERT_EQ(done.get_future().wait_for(std::chrono::seconds(30)), std::future_status::ready);
  EXPECT_EQ(journal.batches_written(), 1u);
  EXPECT_EQ(journal.durable_position(), 100u);
  journal.Stop();
}

TEST_F(JournalOnLoopTest, WhenDurableRunsOnTheLoopOnceDurable) {
  Journal journal(Options());
  ASSERT_TRUE(journal.Recover(0).ok());
  ASSERT_TRUE(journal.StartOnLoop(nullptr, io_));
  RunLoop();
  std::promise<std::thread::id> waiter;
  journal.Append(MakeEvent(1), nullptr);
  const std::uint64_t second = journal.Append(MakeEvent(2), nullptr);
  journal.WhenDurable(second, [&] { waiter.set_value(std::this_thread::get_id()); });
  auto ran_on = waiter.get_future();
  ASSERT_EQ(ran_on.wait_for(std::chrono::seconds(30)), std::future_status::ready);
  EXPECT_EQ(ran_on.get(), loop_id());
  EXPECT_GE(journal.durable_position(), 2u);
  journal.Stop();
}

TEST_F(JournalOnLoopTest, StopWithTheLoopStoppedFinishesEverythingOnTheCaller) {
  int completed = 0;
  std::vector<std::uint64_t> durable_order;
  {
    Journal journal(Options());
    ASSERT_TRUE(journal.Recover(0).ok());
    ASSERT_TRUE(journal.StartOnLoop(
        [&](std::span<const PositionedEvent> batch) {
          for (const auto& event : batch) durable_order.push_back(event.position);
        },
        io_));
    for (std::int64_t i = 1; i <= 50; ++i) journal.Append(MakeEvent(i), [&] { ++completed; });
    // Let the loop take one round: it submits the first batch, which may still be in flight.
    io_.poll_one();
    for (std::int64_t i = 51; i <= 60; ++i) journal.Append(MakeEvent(i), [&] { ++completed; });
    journal.Stop();
    EXPECT_EQ(completed, 60);
    EXPECT_EQ(journal.durable_position(), 60u);
    journal.Stop();  // idempotent
  }
  ASSERT_EQ(durable_order.size(), 60u);
  for (std::uint64_t i = 0; i < 60; ++i) ASSERT_EQ(durable_order[i], i + 1);
  Journal journal(Options());
  auto recovered = journal.Recover(0);
  ASSERT_TRUE(recovered.ok());
  EXPECT_EQ(recovered->size(), 60u);
}

}  // namespace
}  // namespace redpacket::bus
