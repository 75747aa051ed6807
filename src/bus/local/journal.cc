// The local journal: Append queues under a mutex; a writer thread (Start) or an event loop through
// io_uring (StartOnLoop) turns the queue into one write + one fdatasync per batch (group commit),
// and the batch's completions run after it. This file: the queue, the stall and the completions
// both writers share, and Stop().
#include "bus/local/journal.h"

#include <algorithm>
#include <boost/asio/post.hpp>
#include <iterator>
#include <utility>

#include "bus/local/journal_impl.h"

namespace redpacket::bus {
namespace {

using domain::ErrorCode;
using domain::MakeError;
using domain::Status;
using journal_internal::Fatal;

}  // namespace

Journal::Journal(Options options) : state_(std::make_unique<State>(std::move(options))) {}

Journal::~Journal() {
  Stop();
  spdlog::debug("journal: {} batches written", state_->batches_written.load());
}

// Stop() while the disk is full: the batch and what is queued behind it were never
// acknowledged (their completions failed or never ran), so dropping them loses no answer; a
// grab's share comes back at the next start.
void Journal::State::GiveUp(std::span<const PositionedEvent> batch) {
  std::size_t dropped = batch.size();
  {
    std::lock_guard lock(mutex);
    dropped += queued.size();
    queued.clear();
    queued_done.clear();
    queued_failed.clear();
    writer_exited = true;
  }
  spdlog::error(
      "journal: stopping with the disk still full: {} events from position {} were "
      "never written (nor acknowledged)",
      dropped, batch.empty() ? 0 : batch.front().position);
}

// The disk is full: takes every completion of `batch_*` that can fail (its completion is
// dropped: it never runs), then those of the queue and the waiters', bound to the error.
std::vector<Journal::Completion> Journal::State::TakeFailures(std::vector<Completion>& batch_done,
                                                              std::vector<Failure>& batch_failed) {
  std::vector<Completion> failures;
  BindFailures(batch_done, batch_failed, failures);
  std::lock_guard lock(mutex);
  std::vector<Completion> later = TakeQueuedFailuresLocked();
  failures.insert(failures.end(), std::make_move_iterator(later.begin()),
                  std::make_move_iterator(later.end()));
  return failures;
}

// Under `mutex`: the queue's and the waiters' completions that can fail.
std::vector<Journal::Completion> Journal::State::TakeQueuedFailuresLocked() {
  std::vector<Completion> failures;
  BindFailures(queued_done, queued_failed, failures);
  for (auto it = waiters.begin(); it != waiters.end();) {
    if (it->second.failed) {
      failures.push_back(Bind(std::move(it->second.failed)));
      it = waiters.erase(it);
    } else {
      ++it;
    }
  }
  fail_queued = false;
  return failures;
}

Journal::Completion Journal::State::Bind(Failure failed) {
  return [failed = std::move(failed)] {
    failed(MakeError(ErrorCode::kUnavailable, "the journal's disk is full; retry"));
  };
}

void Journal::State::BindFailures(std::vector<Completion>& done, std::vector<Failure>& failed,
                                  std::vector<Completion>& failures) {
  for (std::size_t i = 0; i < failed.size(); ++i) {
    if (!failed[i]) continue;
    failures.push_back(Bind(std::move(failed[i])));
    failed[i] = nullptr;
    done[i] = nullptr;
  }
}

void Journal::State::EnterStall(const std::string& reason) {
  std::lock_guard lock(mutex);
  stall_reason = reason;
  if (stalled.load(std::memory_order_relaxed)) return;
  stalled_since = options.clock->Now();
  stalled.store(true, std::memory_order_release);
  spdlog::error("journal: no room on the disk; answering 503 and retrying: {}", reason);
}

void Journal::State::LeaveStall() {
  if (!stalled.load(std::memory_order_acquire)) return;
  std::lock_guard lock(mutex);
  stalled.store(false, std::memory_order_release);
  spdlog::info(
      "journal: the disk has room again (stalled {} ms)",
      std::chrono::duration_cast<std::chrono::milliseconds>(options.clock->Now() - stalled_since)
          .count());
}

// Moves up to max_batch_events queued events and their completions into the (empty) batch.
// Called under `mutex`.
void Journal::State::TakeBatchLocked(std::vector<PositionedEvent>& batch,
                                     std::vector<Completion>& batch_done,
                                     std::vector<Failure>& batch_failed) {
  last_batch_size = std::min(queued.size(), options.max_batch_events);
  if (queued.size() <= options.max_batch_events) {
    batch.swap(queued);  // keeps both vectors' capacity: no allocation in steady state
    batch_done.swap(queued_done);
    batch_failed.swap(queued_failed);
  } else {
    const auto take = static_cast<std::ptrdiff_t>(options.max_batch_events);
    batch.assign(std::make_move_iterator(queued.begin()),
                 std::make_move_iterator(queued.begin() + take));
    batch_done.assign(std::make_move_iterator(queued_done.begin()),
                      std::make_move_iterator(queued_done.begin() + take));
    batch_failed.assign(std::make_move_iterator(queued_failed.begin()),
                        std::make_move_iterator(queued_failed.begin() + take));
    queued.erase(queued.begin(), queued.begin() + take);
    queued_done.erase(queued_done.begin(), queued_done.begin() + take);
    queued_failed.erase(queued_failed.begin(), queued_failed.begin() + take);
  }
}

// The batch is on disk: publishes its position and collects the waiters it satisfies, leaving
// `batch` and `batch_done` empty.
Journal::State::DurableBatch Journal::State::MarkDurable(std::vector<PositionedEvent>& batch,
                                                         std::vector<Completion>& batch_done) {
  const std::uint64_t durable = batch.back().position;
  durable_position.store(durable, std::memory_order_release);
  batches_written.fetch_add(1, std::memory_order_relaxed);
  DurableBatch finished{std::move(batch), std::move(batch_done), {}, {}};
  batch = {};
  batch_done = {};
  // WhenDurable re-checks durable_position under this mutex, so a waiter is either collected
  // here or runs at once on its caller: never forgotten.
  std::lock_guard lock(mutex);
  const auto end = waiters.upper_bound(durable);
  for (auto it = waiters.begin(); it != end; ++it) {
    finished.waiters.push_back(std::move(it->second.done));
  }
  waiters.erase(waiters.begin(), end);
  return finished;
}

// The failures, then the listener, each event's completion and the WhenDurable waiters.
void Journal::State::RunDurable(DurableBatch& finished) {
  for (Completion& failure : finished.failures) failure();
  if (on_durable && !finished.events.empty()) on_durable(finished.events);
  for (Completion& done : finished.done) {
    if (done) done();
  }
  for (Completion& done : finished.waiters) {
    if (done) done();
  }
}

std::uint64_t Journal::Append(const domain::LedgerEvent& event, Completion done) {
  return Append(event, std::move(done), nullptr);
}

std::uint64_t Journal::Append(const domain::LedgerEvent& event, Completion done, Failure failed) {
  State& state = *state_;
  std::uint64_t position = 0;
  bool notify = false;
  bool post = false;
  bool post_failures = false;
  {
    std::lock_guard lock(state.mutex);
    // Before Recover() positions would restart at 1; after the writer exited nothing would
    // ever write the event. Both are bugs in the caller, and silently dropping a grab is worse.
    if (!state.recovered || state.writer_exited) Fatal("Append() before Recover() or after Stop()");
    position = state.last_position.load(std::memory_order_relaxed) + 1;
    state.last_position.store(position, std::memory_order_release);
    state.queued.push_back(PositionedEvent{position, event});
    state.queued_done.push_back(std::move(done));
    // While the disk is full, a completion that can fail fails at once (the writer, or the
    // loop, takes it): nobody waits for room on the disk.
    const bool fail_now = failed && state.stalled.load(std::memory_order_relaxed);
    state.queued_failed.push_back(std::move(failed));
    if (fail_now) state.fail_queued = true;
    if (state.on_loop && !state.stopping) {
      post_failures = fail_now && !state.fail_posted;
      state.fail_posted = state.fail_posted || post_failures;
      // One flush per round of the loop: none while one is queued or a batch is in flight (its
      // completion takes what queued meanwhile).
      post = !state.flush_posted && !state.in_flight;
      state.flush_posted = state.flush_posted || post;
    } else {
      // Wake the writer only when it may be waiting for this: an empty queue just filled, or the
      // batch it gathers is full. Otherwise it is writing and will find the event on its own.
      notify = state.queued.size() == 1 || fail_now ||
               (state.gathering && state.queued.size() >= state.last_batch_size);
    }
  }
  if (notify) state.wake.notify_one();
  if (post) boost::asio::post(*state.loop, [&state] { state.LoopFlush(); });
  if (post_failures) boost::asio::post(*state.loop, [&state] { state.LoopFailQueued(); });
  return position;
}

void Journal::WhenDurable(std::uint64_t position, Completion done) {
  WhenDurable(position, std::move(done), nullptr);
}

void Journal::WhenDurable(std::uint64_t position, Completion done, Failure failed) {
  State& state = *state_;
  if (position <= state.durable_position.load(std::memory_order_acquire)) {
    if (done) done();
    return;
  }
  {
    std::unique_lock lock(state.mutex);
    if (position > state.durable_position.load(std::memory_order_acquire)) {
      if (!failed || !state.stalled.load(std::memory_order_relaxed)) {
        state.waiters.emplace(position, State::Waiter{std::move(done), std::move(failed)});
        return;
      }
      lock.unlock();
      failed(MakeError(ErrorCode::kUnavailable, "the journal's disk is full; retry"));
      return;
    }
  }
  if (done) done();  // became durable while we took the lock
}

Status Journal::Accepting() const {
  if (!state_->stalled.load(std::memory_order_acquire)) return {};
  return MakeError(ErrorCode::kUnavailable, "the journal's disk is full; retry");
}

std::optional<Journal::Stall> Journal::stall() const {
  State& state = *state_;
  if (!state.stalled.load(std::memory_order_acquire)) return std::nullopt;
  std::lock_guard lock(state.mutex);
  if (!state.stalled.load(std::memory_order_relaxed)) return std::nullopt;
  return Stall{state.stalled_since, state.stall_reason};
}

std::uint64_t Journal::durable_position() const {
  return state_->durable_position.load(std::memory_order_acquire);
}

std::uint64_t Journal::last_position() const {
  return state_->last_position.load(std::memory_order_acquire);
}

std::size_t Journal::queued_events() const {
  // durable first: last_position only grows, so the difference never underflows.
  const std::uint64_t durable = state_->durable_position.load(std::memory_order_acquire);
  const std::uint64_t last = state_->last_position.load(std::memory_order_acquire);
  return static_cast<std::size_t>(last - durable);
}

std::uint64_t Journal::batches_written() const {
  return state_->batches_written.load(std::memory_order_relaxed);
}

void Journal::Stop() {
  State& state = *state_;
  if ((state.writer.joinable() && state.writer.get_id() == std::this_thread::get_id()) ||
      (state.completer.joinable() && state.completer.get_id() == std::this_thread::get_id())) {
    Fatal("Stop() called on a journal thread (from a completion)");
  }
  std::call_once(state.stop_once, [&state] {
    if (state.uring) state.StopLoop();
    bool drain_here = false;
    {
      std::lock_guard lock(state.mutex);
      state.stopping = true;
      drain_here = state.recovered && (!state.started || state.on_loop);
    }
    state.wake.notify_all();
    if (state.writer.joinable()) {
      state.writer.join();
    } else if (drain_here) {
      state.RunWriter();  // never started: write what was appended, on this thread
    } else {
      std::lock_guard lock(state.mutex);
      state.writer_exited = true;
    }
    // Everything is written; run what completions remain, then the completer ends.
    {
      std::lock_guard lock(state.completer_mutex);
      state.completer_stopping = true;
    }
    state.completer_wake.notify_all();
    if (state.completer.joinable()) {
      state.completer.join();
    } else {
      state.RunCompleter();
    }
    state.CloseFiles();
  });
}

}  // namespace redpacket::bus
