// TaskThread: one loop, posted tasks first, then the tick when it is due.
#include "threads/task_thread.h"

#include <pthread.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <unistd.h>

namespace redpacket::threads {

TaskThread::TaskThread(Options options, Task tick)
    : options_(std::move(options)), tick_(std::move(tick)) {}

TaskThread::~TaskThread() { Stop(); }

void TaskThread::Start() {
  std::lock_guard lock(mutex_);
  if (started_ || stopping_) return;
  started_ = true;
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), options_.name.substr(0, 15).c_str());
    // On Linux a thread's nice value is its own (setpriority on its tid).
    if (options_.background && setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), 19) != 0) {
      spdlog::warn("{}: cannot lower its priority", options_.name);
    }
    Run();
  });
}

void TaskThread::Run() {
  using Clock = std::chrono::steady_clock;
  auto next_tick = Clock::now();
  std::unique_lock lock(mutex_);
  while (true) {
    if (!tasks_.empty()) {
      Task task = std::move(tasks_.front());
      tasks_.pop_front();
      lock.unlock();
      task();
      lock.lock();
      continue;
    }
    if (stopping_) break;
    if (!tick_) {
      wake_.wait(lock, [this] { return stopping_ || !tasks_.empty(); });
      continue;
    }
    if (!tick_requested_ && Clock::now() < next_tick) {
      wake_.wait_until(lock, next_tick,
                       [this] { return stopping_ || tick_requested_ || !tasks_.empty(); });
      continue;
    }
    tick_requested_ = false;
    ticking_ = true;
    lock.unlock();
    tick_();
    lock.lock();
    ticking_ = false;
    ++ticks_done_;
    next_tick = Clock::now() + options_.period;
    ticked_.notify_all();
  }
  ticked_.notify_all();
}

void TaskThread::Post(Task task) {
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    tasks_.push_back(std::move(task));
  }
  wake_.notify_one();
}

void TaskThread::TickNow() {
  std::unique_lock lock(mutex_);
  if (!tick_ || !started_ || stopping_) return;
  // The tick that starts after this request: one under way may have begun before it.
  const std::uint64_t target = ticks_done_ + (ticking_ ? 2 : 1);
  tick_requested_ = true;
  wake_.notify_all();
  ticked_.wait(lock, [&] { return ticks_done_ >= target || stopping_; });
}

void TaskThread::Stop() {
  {
    std::lock_guard lock(mutex_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
  }
  wake_.notify_all();
  ticked_.notify_all();
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
}

bool TaskThread::stopping() const {
  std::lock_guard lock(mutex_);
  return stopping_;
}

bool TaskThread::WaitFor(std::chrono::milliseconds duration) {
  std::unique_lock lock(mutex_);
  return !wake_.wait_for(lock, duration, [this] { return stopping_; });
}

std::size_t TaskThread::queue_depth() const {
  std::lock_guard lock(mutex_);
  return tasks_.size();
}

std::uint64_t TaskThread::ticks() const {
  std::lock_guard lock(mutex_);
  return ticks_done_;
}

}  // namespace redpacket::threads
