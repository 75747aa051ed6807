// TaskThread: the one way a background loop runs here. A thread of its own that runs posted tasks
// in order and, when it has one, a tick: every `period`, or again as soon as it returns when the
// period is 0 (a tick that waits by itself, e.g. a bus poll). Stop() runs what was posted, lets
// a tick in progress finish (a long tick checks stopping() or waits with WaitFor()), and joins.
// Exceptions, each written down where it lives: the HTTP server's and the Redis lease's asio
// event loops, and the journal's writer and completion threads (decisions §8).
// Thread-safe: every member from any thread, except Stop() and TickNow() from the thread itself.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace redpacket::threads {

class TaskThread {
 public:
  using Task = std::function<void()>;
  struct Options {
    std::string name;                     // the thread's name (15 characters are kept)
    std::chrono::milliseconds period{0};  // between ticks (0: back to back)
    bool background = false;              // nice 19: what waits for it is never a request
  };

  explicit TaskThread(Options options, Task tick = {});
  ~TaskThread();  // Stop()s
  TaskThread(const TaskThread&) = delete;
  TaskThread& operator=(const TaskThread&) = delete;

  void Start();
  // Runs `task` on the thread, after what was posted before. Dropped after Stop().
  void Post(Task task);
  // Blocking: wakes the thread, returns once a tick that began after this call has ended (at
  // once when stopping, or without a tick).
  void TickNow();
  // Blocking: posted tasks run, a tick under way ends, the thread joins. Idempotent.
  void Stop();

  // For a tick or task: true once Stop() was called.
  bool stopping() const;
  // For a tick or task: waits up to `duration`; false when Stop() ended the wait early.
  bool WaitFor(std::chrono::milliseconds duration);
  std::size_t queue_depth() const;
  std::uint64_t ticks() const;

 private:
  void Run();

  Options options_;
  Task tick_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable ticked_;
  std::deque<Task> tasks_;
  bool started_ = false;
  bool stopping_ = false;
  bool tick_requested_ = false;
  bool ticking_ = false;
  std::uint64_t ticks_done_ = 0;
  std::thread thread_;
};

}  // namespace redpacket::threads
