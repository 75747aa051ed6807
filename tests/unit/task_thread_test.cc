// TaskThread, the loop every background part runs on: tasks run in order on its own thread, a
// tick runs every period or at once on TickNow(), Stop() runs what was posted and lets a tick
// under way finish, a long tick waiting with WaitFor() is woken by Stop().
#include "threads/task_thread.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <mutex>
#include <thread>
#include <vector>

namespace redpacket::threads {
namespace {

using namespace std::chrono_literals;

TEST(TaskThreadTest, TasksRunInOrderOnTheThreadAndStopRunsWhatWasPosted) {
  TaskThread thread({.name = "rp-test"});
  std::vector<int> order;
  std::thread::id ran_on;
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  thread.Post([&, released] {
    released.wait();  // the rest queues behind it
    ran_on = std::this_thread::get_id();
  });
  for (int i = 0; i < 100; ++i) thread.Post([&order, i] { order.push_back(i); });
  EXPECT_EQ(thread.queue_depth(), 101u) << "posted before Start(): they wait";
  thread.Start();
  release.set_value();
  thread.Stop();
  ASSERT_EQ(order.size(), 100u);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(order[i], i);
  EXPECT_NE(ran_on, std::this_thread::get_id());
  bool after_stop = false;
  thread.Post([&after_stop] { after_stop = true; });
  EXPECT_FALSE(after_stop) << "a task posted after Stop() is dropped";
}

TEST(TaskThreadTest, TicksEveryPeriodAndAtOnceOnTickNow) {
  std::atomic<int> ticks{0};
  TaskThread slow({.name = "rp-test", .period = std::chrono::hours(1)}, [&ticks] { ++ticks; });
  slow.Start();
  // The first tick is due at once; the next only in an hour, unless asked for.
  slow.TickNow();
  const int before = ticks.load();
  EXPECT_GE(before, 1);
  slow.TickNow();
  EXPECT_EQ(ticks.load(), before + 1) << "TickNow returns once a tick begun after it has ended";
  slow.Stop();

  std::atomic<int> fast_ticks{0};
  TaskThread fast({.name = "rp-test", .period = 5ms}, [&fast_ticks] { ++fast_ticks; });
  fast.Start();
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (fast_ticks.load() < 5 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(1ms);
  }
  fast.Stop();
  EXPECT_GE(fast_ticks.load(), 5);
  EXPECT_EQ(fast.ticks(), static_cast<std::uint64_t>(fast_ticks.load()));
}

TEST(TaskThreadTest, StopWakesATickWaitingAndLetsItFinish) {
  std::atomic<bool> woken_early{false};
  std::atomic<bool> finished{false};
  std::promise<void> waiting;
  TaskThread* self = nullptr;
  TaskThread thread({.name = "rp-test", .period = 0ms}, [&] {
    if (finished.load()) return;
    waiting.set_value();
    woken_early = !self->WaitFor(std::chrono::hours(1));
    EXPECT_TRUE(self->stopping());
    finished = true;
  });
  self = &thread;
  thread.Start();
  waiting.get_future().wait();
  const auto started = std::chrono::steady_clock::now();
  thread.Stop();
  EXPECT_TRUE(finished.load());
  EXPECT_TRUE(woken_early.load());
  EXPECT_LT(std::chrono::steady_clock::now() - started, 10s);
}

TEST(TaskThreadTest, StopIsIdempotentAndTickNowAfterStopReturns) {
  std::atomic<int> ticks{0};
  TaskThread thread({.name = "rp-test", .period = std::chrono::hours(1)}, [&ticks] { ++ticks; });
  thread.Start();
  thread.Stop();
  thread.Stop();
  thread.TickNow();  // must not wait for a tick that will never come
  thread.Start();    // a stopped thread stays stopped
  thread.Post([] { FAIL() << "ran after Stop()"; });
  SUCCEED();
}

TEST(TaskThreadTest, ANeverStartedThreadStopsAtOnce) {
  TaskThread thread({.name = "rp-test"}, [] {});
  thread.TickNow();
  thread.Stop();
  SUCCEED();
}

}  // namespace
}  // namespace redpacket::threads
