// The journal's loop writer (StartOnLoop()): an event loop's thread drives io_uring.
#include <algorithm>
#include <boost/asio/post.hpp>
#include <utility>

#include "bus/local/journal_impl.h"

namespace redpacket::bus {
namespace {

using domain::Error;
using domain::ErrorCode;
using domain::Status;
using journal_internal::Errno;
using journal_internal::Fatal;
using journal_internal::IsNoSpace;
using journal_internal::kStallRetryInitial;
using journal_internal::kStallRetryMax;

}  // namespace

// Posted by Append when the queue fills and nothing is in flight: runs after the loop's
// handlers that are ready now, so one round of requests becomes one batch.
void Journal::State::LoopFlush() {
  std::lock_guard ring_lock(ring_mutex);
  if (loop_stopped) return;
  {
    std::lock_guard lock(mutex);
    flush_posted = false;
    if (in_flight || queued.empty()) return;
    in_flight = true;
    TakeBatchLocked(flight, flight_done, flight_failed);
  }
  SubmitFlight();
}

// Prepares the batch in flight and submits its write + fdatasync; where the disk has no room
// for it, holds it instead (HoldFlight).
void Journal::State::SubmitFlight() {
  auto prepared = PrepareBatch(flight);
  Status step = prepared.ok() ? StepOrNoSpace(RotationStep::kWriteBatch) : prepared.error();
  if (!step.ok()) return HoldFlight(step.error());
  if (Status submitted =
          uring->Submit(segment_fd, buffer.data(), buffer.size(), static_cast<off_t>(segment_size));
      !submitted.ok()) {
    Fatal(submitted.error().message);
  }
  ring_event->async_wait(boost::asio::posix::stream_descriptor::wait_read,
                         [this](boost::system::error_code error) {
                           // Aborted at Stop(): the state may be gone, touch nothing.
                           if (!error) OnRingEvent();
                         });
}

void Journal::State::OnRingEvent() {
  std::lock_guard ring_lock(ring_mutex);
  if (loop_stopped) return;
  std::optional<UringSyncWriter::Outcome> outcome = uring->Poll();
  if (!outcome) {
    ring_event->async_wait(boost::asio::posix::stream_descriptor::wait_read,
                           [this](boost::system::error_code error) {
                             if (!error) OnRingEvent();
                           });
    return;
  }
  if (Status finished = FinishFlight(*outcome); !finished.ok()) {
    return HoldFlight(finished.error());
  }
  LeaveStall();
  loop_backoff = kStallRetryInitial;
  DurableBatch finished = MarkDurable(flight, flight_done);
  flight_failed.clear();
  bool more;
  {
    std::lock_guard lock(mutex);
    more = !queued.empty();
    in_flight = more;
    if (more) TakeBatchLocked(flight, flight_done, flight_failed);
  }
  // The next batch's fsync runs while this batch's replies are sent.
  if (more) SubmitFlight();
  RunDurable(finished);
}

// The batch in flight has finished: it is durable (ok), or the disk had no room for it
// (kUnavailable: nothing of it is durable). Any other failure aborts the process.
Status Journal::State::FinishFlight(const UringSyncWriter::Outcome& outcome) {
  if (outcome.written < 0) {
    errno = static_cast<int>(-outcome.written);
    if (IsNoSpace(errno)) return NoSpace("no room to write the segment in", options.directory);
    Fatal(Errno("write failed on the segment in", options.directory));
  }
  const auto written = static_cast<std::size_t>(outcome.written);
  if (written < buffer.size()) {
    // A short write broke the link, so the fsync did not run: finish both here (rare).
    REDPACKET_JOURNAL_TRY(
        WriteAt(buffer.data() + written, buffer.size() - written, segment_size + written));
    RecordsWritten();
    SyncSegment();
  } else if (outcome.synced < 0) {
    SyncFailed(-outcome.synced);
  } else {
    RecordsWritten();
  }
  segment_size += buffer.size();
  return {};
}

// The disk has no room for the batch in flight: it stays in flight (what is appended meanwhile
// queues behind it) and is written again after a backoff; what can fail fails now, here on
// the loop's thread as the completions would run. Under ring_mutex.
void Journal::State::HoldFlight(const Error& error) {
  EnterStall(error.message);
  std::vector<Completion> failures = TakeFailures(flight_done, flight_failed);
  flight_held = true;
  retry_timer->expires_after(loop_backoff);
  retry_timer->async_wait([this](boost::system::error_code failed) {
    // Aborted at Stop(): the state may be gone, touch nothing.
    if (!failed) RetryFlight();
  });
  loop_backoff = std::min(kStallRetryMax, loop_backoff * 2);
  for (Completion& failure : failures) failure();
}

void Journal::State::RetryFlight() {
  std::lock_guard ring_lock(ring_mutex);
  if (loop_stopped || !flight_held) return;
  flight_held = false;
  SubmitFlight();
}

// Posted by Append while the disk is full: the completions it queued that can fail, fail.
void Journal::State::LoopFailQueued() {
  std::vector<Completion> failures;
  {
    std::lock_guard lock(mutex);
    fail_posted = false;
    failures = TakeQueuedFailuresLocked();
  }
  for (Completion& failure : failures) failure();
}

// Stop(): the loop's handlers do nothing from now on; the batch in flight is awaited (or, held
// for a full disk, written once more) and its completions run here. What is still queued is
// drained by RunWriter on the caller's thread.
void Journal::State::StopLoop() {
  std::lock_guard ring_lock(ring_mutex);
  loop_stopped = true;
  retry_timer->cancel();
  bool in_ring = uring->in_flight();
  if (in_ring) {
    const std::optional<UringSyncWriter::Outcome> outcome = uring->Wait();
    if (Status finished = FinishFlight(*outcome); !finished.ok()) {
      EnterStall(finished.error().message);
      flight_held = true;
    }
  }
  if (flight_held && WriteAndSync(flight).ok()) flight_held = false;
  if (flight_held) {
    for (Completion& failure : TakeFailures(flight_done, flight_failed)) failure();
    GiveUp(flight);
    flight.clear();
    flight_done.clear();
    flight_failed.clear();
  } else if (in_ring || !flight.empty()) {
    DurableBatch finished = MarkDurable(flight, flight_done);
    flight_failed.clear();
    RunDurable(finished);
  }
  {
    std::lock_guard lock(mutex);
    in_flight = false;
  }
  // Cancels the wait (its handler sees operation_aborted) and lets go of the descriptor, which
  // the ring owns; the loop's io_context may be destroyed after this.
  ring_event->release();
  ring_event.reset();
  retry_timer.reset();
}

bool Journal::StartOnLoop(DurableListener on_durable, boost::asio::io_context& loop) {
  State& state = *state_;
  auto uring = UringSyncWriter::Create();
  if (!uring.ok()) {
    spdlog::warn("journal: io_uring is unavailable ({}); using a writer thread",
                 uring.error().message);
    return false;
  }
  bool flush_now = false;
  {
    std::lock_guard ring_lock(state.ring_mutex);
    std::lock_guard lock(state.mutex);
    if (!state.recovered || state.started || state.stopping) {
      Fatal("StartOnLoop() must be called once, after Recover() and before Stop()");
    }
    state.started = true;
    state.on_loop = true;
    state.on_durable = std::move(on_durable);
    state.loop = &loop;
    state.uring = std::move(*uring);
    state.ring_event.emplace(loop, state.uring->event_fd());
    state.retry_timer.emplace(loop);
    flush_now = !state.queued.empty();  // appended between Recover() and now
    state.flush_posted = flush_now;
  }
  if (flush_now) boost::asio::post(loop, [&state] { state.LoopFlush(); });
  return true;
}

}  // namespace redpacket::bus
