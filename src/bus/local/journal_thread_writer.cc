// The journal's thread writer (Start()): a writer thread and a completion thread.
#include <pthread.h>

#include <algorithm>
#include <utility>

#include "bus/local/journal_impl.h"

namespace redpacket::bus {
namespace {

using domain::Status;
using journal_internal::Fatal;
using journal_internal::kStallRetryInitial;
using journal_internal::kStallRetryMax;

}  // namespace

// The writer thread's loop (or, when Start() never ran, Stop()'s drain on the caller's thread).
void Journal::State::RunWriter() {
  std::vector<PositionedEvent> batch;
  std::vector<Completion> batch_done;
  std::vector<Failure> batch_failed;
  while (true) {
    {
      std::unique_lock lock(mutex);
      wake.wait(lock, [this] { return !queued.empty() || stopping; });
      if (!stopping && last_batch_size > 1 && queued.size() < last_batch_size) {
        gathering = true;
        wake.wait_for(lock, options.gather_window,
                      [this] { return queued.size() >= last_batch_size || stopping; });
        gathering = false;
      }
      if (queued.empty()) {  // stopping, and everything is durable
        writer_exited = true;
        return;
      }
      TakeBatchLocked(batch, batch_done, batch_failed);
    }
    if (!WriteUntilRoom(batch, batch_done, batch_failed)) {
      GiveUp(batch);
      return;
    }
    DurableBatch finished = MarkDurable(batch, batch_done);
    batch_failed.clear();
    // Why a second thread: the completions (replies, the applier's hand-off) run while the
    // next batch's fsync is already under way, instead of delaying it.
    ToCompleter(std::move(finished));
  }
}

Journal::State::DurableBatch Journal::State::FailuresOnly(std::vector<Completion> failures) {
  DurableBatch batch;
  batch.failures = std::move(failures);
  return batch;
}

void Journal::State::ToCompleter(DurableBatch finished) {
  {
    std::lock_guard lock(completer_mutex);
    completed.push_back(std::move(finished));
  }
  completer_wake.notify_one();
}

// Writes and fdatasyncs the batch. While the disk has no room, keeps it and writes it again
// with backoff (up to kStallRetryMax), and meanwhile fails at once every completion and
// waiter that can fail, the batch's, the queued ones' and those appended later: their events
// were decided and stay queued (durable, and applied, once there is room), but nobody is told
// they are. false: Stop() came while the disk was still full (nothing of it is durable).
bool Journal::State::WriteUntilRoom(std::vector<PositionedEvent>& batch,
                                    std::vector<Completion>& batch_done,
                                    std::vector<Failure>& batch_failed) {
  auto backoff = kStallRetryInitial;
  while (true) {
    Status written = WriteAndSync(batch);
    if (written.ok()) {
      LeaveStall();
      return true;
    }
    EnterStall(written.error().message);
    std::vector<Completion> failures = TakeFailures(batch_done, batch_failed);
    if (!failures.empty()) ToCompleter(FailuresOnly(std::move(failures)));
    std::unique_lock lock(mutex);
    if (stopping) return false;
    const auto until = std::chrono::steady_clock::now() + backoff;
    while (!stopping && std::chrono::steady_clock::now() < until) {
      wake.wait_until(lock, until, [this] { return stopping || fail_queued; });
      if (!fail_queued) continue;
      std::vector<Completion> later = TakeQueuedFailuresLocked();
      lock.unlock();
      ToCompleter(FailuresOnly(std::move(later)));
      lock.lock();
    }
    backoff = std::min(kStallRetryMax, backoff * 2);
  }
}

// The completer thread's loop: durable batches in order — the listener, then each event's
// completion, then the WhenDurable waiters. Returns once stopping and drained.
void Journal::State::RunCompleter() {
  std::unique_lock lock(completer_mutex);
  while (true) {
    completer_wake.wait(lock, [this] { return !completed.empty() || completer_stopping; });
    if (completed.empty()) return;
    DurableBatch finished = std::move(completed.front());
    completed.pop_front();
    lock.unlock();
    RunDurable(finished);
    lock.lock();
  }
}

void Journal::Start(DurableListener on_durable) {
  State& state = *state_;
  std::lock_guard lock(state.mutex);
  if (!state.recovered || state.started || state.stopping) {
    Fatal("Start() must be called once, after Recover() and before Stop()");
  }
  state.started = true;
  state.on_durable = std::move(on_durable);
  state.writer = std::thread([&state] {
    pthread_setname_np(pthread_self(), "rp-journal");
    state.RunWriter();
  });
  state.completer = std::thread([&state] {
    pthread_setname_np(pthread_self(), "rp-journal-done");
    state.RunCompleter();
  });
}

}  // namespace redpacket::bus
