// The local journal: Append queues under a mutex; a writer thread (Start) or an event loop through
// io_uring (StartOnLoop) turns the queue into one write + one fdatasync per batch (group commit),
// and the batch's completions run after it.
#include "bus/local/journal.h"

#include <fcntl.h>
#include <pthread.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include "bus/local/journal_format.h"
#include "bus/local/uring_sync_writer.h"

namespace redpacket::bus {
namespace {

using domain::Error;
using domain::ErrorCode;
using domain::MakeError;
using domain::Result;
using domain::Status;
namespace format = journal_internal;

// An I/O error other than a full disk, or a failed fsync, may have lost what was written: stop the
// process loudly (see Journal::Append); a restart recovers from what is on disk.
[[noreturn]] void Fatal(std::string_view what) {
  spdlog::critical("journal: {}", what);
  spdlog::default_logger()->flush();
  std::abort();
}

std::string Errno(std::string_view what, const std::filesystem::path& path) {
  return fmt::format("{} {}: {}", what, path.string(),
                     std::error_code(errno, std::generic_category()).message());
}

// Returns the error of a Status or Result<T> from the enclosing function if there is one.
#define REDPACKET_JOURNAL_TRY(expression)                     \
  do {                                                        \
    if (auto try_result_ = (expression); !try_result_.ok()) { \
      return try_result_.error();                             \
    }                                                         \
  } while (false)

// No room on the disk: a write that can pass once room is made (the batch is kept and written
// again), as opposed to an I/O error.
bool IsNoSpace(int error) { return error == ENOSPC || error == EDQUOT; }

constexpr std::chrono::milliseconds kStallRetryInitial{50};
constexpr std::chrono::milliseconds kStallRetryMax{2000};

Status SyncDirectory(int directory_fd, const std::filesystem::path& directory) {
  if (::fsync(directory_fd) != 0) {
    return MakeError(ErrorCode::kInternal, Errno("cannot fsync the directory", directory));
  }
  return {};
}

}  // namespace

struct Journal::State {
  explicit State(Options journal_options) : options(std::move(journal_options)) {}

  // What the completer (or the loop) runs, in order: a durable batch's listener, completions and
  // waiters; or, while the disk is full, the failures of completions and waiters that can fail.
  struct DurableBatch {
    std::vector<PositionedEvent> events;
    std::vector<Completion> done;
    std::vector<Completion> waiters;
    std::vector<Completion> failures;  // each a Failure bound to its error
  };
  struct Waiter {
    Completion done;
    Failure failed;  // may be empty: then it waits out a stall
  };

  // Tests stop or fail the process here (Options::step_hook); a no-op otherwise.
  Status Step(RotationStep step) const {
    return options.step_hook ? options.step_hook(step) : Status{};
  }

  // A step of the write path: a hook's kUnavailable is a full disk (returned: the batch waits
  // for room), any other error an I/O error (fatal, as a real one).
  Status StepOrNoSpace(RotationStep step) const {
    Status result = Step(step);
    if (!result.ok() && result.error().code != ErrorCode::kUnavailable) {
      Fatal(result.error().message);
    }
    return result;
  }

  Error NoSpace(std::string_view what, const std::filesystem::path& path) const {
    return MakeError(ErrorCode::kUnavailable, Errno(what, path));
  }

  // Ends the current segment at its last record and closes it. Why before the next segment is
  // created: a closed segment then never ends in zeroed space, whatever the point of a crash
  // (docs/decisions.md §19). Its records were fdatasync'ed after their batch; the fsync here
  // makes the new size durable.
  Status CloseCurrentSegment() {
    Status step = Step(RotationStep::kTrimClosing);
    if (step.ok() && ::ftruncate(segment_fd, static_cast<off_t>(segment_size)) != 0) {
      step = MakeError(ErrorCode::kInternal,
                       Errno("cannot trim the closing segment in", options.directory));
    }
    if (step.ok()) step = Step(RotationStep::kSyncClosing);
    if (step.ok() && ::fsync(segment_fd) != 0) {
      step = MakeError(ErrorCode::kInternal,
                       Errno("cannot fsync the closing segment in", options.directory));
    }
    if (!step.ok()) return step;
    ::close(segment_fd);
    segment_fd = -1;
    return {};
  }

  // Creates the (empty) segment whose first record will be `first_position` and makes it current.
  // The directory is fsync'ed so that the new file's name survives a crash with its content.
  // kUnavailable when the disk has no room for it (nothing was created: call again).
  Status OpenNewSegment(std::uint64_t first_position) {
    const std::filesystem::path path = options.directory / format::SegmentFileName(first_position);
    if (Status step = Step(RotationStep::kCreateNext); !step.ok()) return step;
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0 && IsNoSpace(errno)) return NoSpace("no room to create", path);
    if (fd < 0) return MakeError(ErrorCode::kInternal, Errno("cannot create", path));
    Status synced = Step(RotationStep::kSyncDirectory);
    if (synced.ok()) synced = SyncDirectory(directory_fd, options.directory);
    if (!synced.ok()) {
      ::close(fd);
      return synced;
    }
    segment_fd = fd;
    segment_size = 0;
    zeroed_until = 0;
    std::lock_guard lock(segments_mutex);
    segment_firsts.push_back(first_position);
    return {};
  }

  // Deletes the segment files of `paths`, oldest first, each deletion made durable (a directory
  // fsync) before the next: a crash, even a power cut, leaves the newest of them and never a gap
  // in the positions, which recovery would have to refuse. Counts in `removed` what is gone.
  Status RemoveSegmentsInOrder(std::span<const std::filesystem::path> paths, int dir_fd,
                               std::size_t& removed) const {
    removed = 0;
    for (const std::filesystem::path& path : paths) {
      if (Status step = Step(RotationStep::kRemoveReleased); !step.ok()) return step;
      std::error_code error;
      std::filesystem::remove(path, error);
      if (error) {
        return MakeError(ErrorCode::kInternal,
                         fmt::format("cannot remove {}: {}", path.string(), error.message()));
      }
      if (Status step = Step(RotationStep::kSyncAfterRemove); !step.ok()) return step;
      if (Status synced = SyncDirectory(dir_fd, options.directory); !synced.ok()) return synced;
      ++removed;
    }
    return {};
  }

  // A hook error in the write path is handled as a failed write or fsync there would be.
  void StepOrFatal(RotationStep step) const {
    if (Status result = Step(step); !result.ok()) Fatal(result.error().message);
  }

  // Writes one batch to the current segment (rotating first if it is full) and fdatasyncs it.
  // kUnavailable when the disk has no room for it: nothing of it is durable, and the same batch
  // may be written again (at the same place). Any other failure aborts the process.
  Status WriteAndSync(std::span<const PositionedEvent> batch) {
    auto rotating = PrepareBatch(batch);
    if (!rotating.ok()) return rotating.error();
    if (*rotating) REDPACKET_JOURNAL_TRY(StepOrNoSpace(RotationStep::kWriteFirstBatch));
    REDPACKET_JOURNAL_TRY(StepOrNoSpace(RotationStep::kWriteBatch));
    REDPACKET_JOURNAL_TRY(WriteAt(buffer.data(), buffer.size(), segment_size));
    RecordsWritten();
    if (*rotating) StepOrFatal(RotationStep::kSyncFirstBatch);
    SyncSegment();
    segment_size += buffer.size();
    return {};
  }

  // The records of `buffer` are written at segment_size: the file reaches at least their end.
  void RecordsWritten() { zeroed_until = std::max(zeroed_until, segment_size + buffer.size()); }

  // Rotates if the segment is full (or creates the first one), encodes the batch into `buffer`
  // for offset `segment_size`, and lays zeroed space under it where the disk has room. True when
  // it began a segment (the test hooks' steps); kUnavailable when the disk has no room for it.
  Result<bool> PrepareBatch(std::span<const PositionedEvent> batch) {
    const bool rotating = segment_fd < 0 || segment_size >= options.segment_bytes;
    if (rotating) {
      // Rotate between batches only: a batch never spans two segments, which is what lets
      // recovery tell a torn batch from damage (see journal_format.h). A rotation cut short by
      // a full disk goes on where it stopped: the full segment is closed once.
      if (segment_fd >= 0) {
        if (Status closed = CloseCurrentSegment(); !closed.ok()) Fatal(closed.error().message);
      }
      if (Status opened = OpenNewSegment(batch.front().position); !opened.ok()) {
        if (opened.error().code != ErrorCode::kUnavailable) Fatal(opened.error().message);
        return opened.error();
      }
    }
    buffer.resize(batch.size() * format::kRecordBytes);
    for (std::size_t i = 0; i < batch.size(); ++i) {
      format::EncodeRecord(batch[i], i == 0, buffer.data() + i * format::kRecordBytes);
    }
    // Why zeroed space ahead of the records: fdatasync of a write inside already-written blocks
    // need not commit file-system metadata (size, extents), which halves its cost here
    // (docs/decisions.md). One chunk of zeros per kZeroChunkBytes of records pays that once.
    // Where the disk has no room for it, the records go without (their fdatasync then also
    // commits the file's new size): the space is an optimisation, never a reason to wait.
    while (zeroed_until < segment_size + buffer.size()) {
      std::size_t zeroed = 0;
      Status step = rotating ? StepOrNoSpace(RotationStep::kPreallocate) : Status{};
      if (step.ok()) step = WriteAt(zeros().data(), kZeroChunkBytes, zeroed_until, &zeroed);
      zeroed_until += zeroed;
      if (!step.ok()) break;
    }
    return rotating;
  }

  void SyncSegment() {
    if (::fdatasync(segment_fd) != 0) SyncFailed(errno);
  }

  [[noreturn]] void SyncFailed(int error) {
    // After a failed fsync the kernel may have dropped the dirty pages: retrying could report
    // success for data that is not on disk.
    errno = error;
    Fatal(Errno("fdatasync failed on the segment in", options.directory));
  }

  static constexpr std::size_t kZeroChunkBytes = 4u << 20;
  static const std::vector<std::byte>& zeros() {
    static const std::vector<std::byte> chunk(kZeroChunkBytes);
    return chunk;
  }

  // kUnavailable when the disk has no room (`*written` says how much was written before);
  // any other error aborts.
  Status WriteAt(const std::byte* data, std::size_t size, std::size_t offset,
                 std::size_t* written_out = nullptr) {
    std::size_t written = 0;
    Status status;
    while (written < size) {
      const ssize_t done = ::pwrite(segment_fd, data + written, size - written,
                                    static_cast<off_t>(offset + written));
      if (done < 0 && errno == EINTR) continue;
      if (done < 0 && IsNoSpace(errno)) {
        status = NoSpace("no room to write the segment in", options.directory);
        break;
      }
      if (done < 0) Fatal(Errno("write failed on the segment in", options.directory));
      written += static_cast<std::size_t>(done);
    }
    if (written_out != nullptr) *written_out = written;
    return status;
  }

  // The writer thread's loop (or, when Start() never ran, Stop()'s drain on the caller's thread).
  void RunWriter() {
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

  static DurableBatch FailuresOnly(std::vector<Completion> failures) {
    DurableBatch batch;
    batch.failures = std::move(failures);
    return batch;
  }

  void ToCompleter(DurableBatch finished) {
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
  bool WriteUntilRoom(std::vector<PositionedEvent>& batch, std::vector<Completion>& batch_done,
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

  // Stop() while the disk is full: the batch and what is queued behind it were never
  // acknowledged (their completions failed or never ran), so dropping them loses no answer; a
  // grab's share comes back at the next start.
  void GiveUp(std::span<const PositionedEvent> batch) {
    std::size_t dropped = batch.size();
    {
      std::lock_guard lock(mutex);
      dropped += queued.size();
      queued.clear();
      queued_done.clear();
      queued_failed.clear();
      writer_exited = true;
    }
    spdlog::error("journal: stopping with the disk still full: {} events from position {} were "
                  "never written (nor acknowledged)",
                  dropped, batch.empty() ? 0 : batch.front().position);
  }

  // The disk is full: takes every completion of `batch_*` that can fail (its completion is
  // dropped: it never runs), then those of the queue and the waiters', bound to the error.
  std::vector<Completion> TakeFailures(std::vector<Completion>& batch_done,
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
  std::vector<Completion> TakeQueuedFailuresLocked() {
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

  static Completion Bind(Failure failed) {
    return [failed = std::move(failed)] {
      failed(MakeError(ErrorCode::kUnavailable, "the journal's disk is full; retry"));
    };
  }

  static void BindFailures(std::vector<Completion>& done, std::vector<Failure>& failed,
                           std::vector<Completion>& failures) {
    for (std::size_t i = 0; i < failed.size(); ++i) {
      if (!failed[i]) continue;
      failures.push_back(Bind(std::move(failed[i])));
      failed[i] = nullptr;
      done[i] = nullptr;
    }
  }

  void EnterStall(const std::string& reason) {
    std::lock_guard lock(mutex);
    stall_reason = reason;
    if (stalled.load(std::memory_order_relaxed)) return;
    stalled_since = domain::Clock::now();
    stalled.store(true, std::memory_order_release);
    spdlog::error("journal: no room on the disk; answering 503 and retrying: {}", reason);
  }

  void LeaveStall() {
    if (!stalled.load(std::memory_order_acquire)) return;
    std::lock_guard lock(mutex);
    stalled.store(false, std::memory_order_release);
    spdlog::info("journal: the disk has room again (stalled {} ms)",
                 std::chrono::duration_cast<std::chrono::milliseconds>(domain::Clock::now() -
                                                                       stalled_since)
                     .count());
  }

  // Moves up to max_batch_events queued events and their completions into the (empty) batch.
  // Called under `mutex`.
  void TakeBatchLocked(std::vector<PositionedEvent>& batch, std::vector<Completion>& batch_done,
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
  DurableBatch MarkDurable(std::vector<PositionedEvent>& batch, std::vector<Completion>& batch_done) {
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
  void RunDurable(DurableBatch& finished) {
    for (Completion& failure : finished.failures) failure();
    if (on_durable && !finished.events.empty()) on_durable(finished.events);
    for (Completion& done : finished.done) {
      if (done) done();
    }
    for (Completion& done : finished.waiters) {
      if (done) done();
    }
  }

  // --- StartOnLoop: the loop's thread drives io_uring (every step under ring_mutex) ---

  // Posted by Append when the queue fills and nothing is in flight: runs after the loop's
  // handlers that are ready now, so one round of requests becomes one batch.
  void LoopFlush() {
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
  void SubmitFlight() {
    auto prepared = PrepareBatch(flight);
    Status step = prepared.ok() ? StepOrNoSpace(RotationStep::kWriteBatch) : prepared.error();
    if (!step.ok()) return HoldFlight(step.error());
    if (Status submitted = uring->Submit(segment_fd, buffer.data(), buffer.size(),
                                         static_cast<off_t>(segment_size));
        !submitted.ok()) {
      Fatal(submitted.error().message);
    }
    ring_event->async_wait(boost::asio::posix::stream_descriptor::wait_read,
                           [this](boost::system::error_code error) {
                             // Aborted at Stop(): the state may be gone, touch nothing.
                             if (!error) OnRingEvent();
                           });
  }

  void OnRingEvent() {
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
  Status FinishFlight(const UringSyncWriter::Outcome& outcome) {
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
  void HoldFlight(const Error& error) {
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

  void RetryFlight() {
    std::lock_guard ring_lock(ring_mutex);
    if (loop_stopped || !flight_held) return;
    flight_held = false;
    SubmitFlight();
  }

  // Posted by Append while the disk is full: the completions it queued that can fail, fail.
  void LoopFailQueued() {
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
  void StopLoop() {
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

  // The completer thread's loop: durable batches in order — the listener, then each event's
  // completion, then the WhenDurable waiters. Returns once stopping and drained.
  void RunCompleter() {
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

  void CloseFiles() {
    if (segment_fd >= 0) ::close(segment_fd);
    if (directory_fd >= 0) ::close(directory_fd);
    segment_fd = -1;
    directory_fd = -1;
  }

  const Options options;

  // Used by Recover() before Start() and by the writer thread after.
  int segment_fd = -1;
  int directory_fd = -1;
  std::size_t segment_size = 0;  // bytes of records in the current segment
  std::size_t zeroed_until = 0;  // the current segment's file size: zeros past segment_size
  std::vector<std::byte> buffer;
  DurableListener on_durable;
  std::thread writer;
  std::thread completer;

  std::mutex completer_mutex;
  std::condition_variable completer_wake;
  std::deque<DurableBatch> completed;  // durable, completions not run yet; in order
  bool completer_stopping = false;
  std::atomic<std::uint64_t> batches_written{0};
  std::size_t last_batch_size = 0;  // under `mutex`
  bool gathering = false;           // under `mutex`: the writer waits for its batch to fill
  std::once_flag stop_once;

  std::mutex mutex;  // guards everything down to the atomics
  std::condition_variable wake;
  // Parallel vectors, in position order: queue order == position order because the position is
  // assigned under the same lock that pushes.
  std::vector<PositionedEvent> queued;
  std::vector<Completion> queued_done;
  std::vector<Failure> queued_failed;  // empty where the completion cannot fail
  std::multimap<std::uint64_t, Waiter> waiters;
  // The disk had no room for the last write: the writer holds its batch and tries again.
  std::atomic<bool> stalled{false};  // stored under `mutex`
  domain::TimePoint stalled_since;   // under `mutex`
  std::string stall_reason;          // under `mutex`
  bool fail_queued = false;  // under `mutex`: stalled, and Append queued a completion that can fail
  bool recovered = false;
  bool started = false;
  bool stopping = false;
  bool writer_exited = false;

  // StartOnLoop only. Lock order: ring_mutex, then mutex (Append takes only mutex).
  boost::asio::io_context* loop = nullptr;  // set once before the loop runs our handlers
  std::unique_ptr<UringSyncWriter> uring;
  std::optional<boost::asio::posix::stream_descriptor> ring_event;  // the ring's eventfd
  std::mutex ring_mutex;  // the loop's handlers vs Stop(); guards uring, ring_event, flight
  bool loop_stopped = false;  // under ring_mutex
  std::vector<PositionedEvent> flight;  // the batch in flight
  std::vector<Completion> flight_done;
  std::vector<Failure> flight_failed;
  // The batch in flight waits for room on the disk (not in the ring): retry_timer resubmits it.
  bool flight_held = false;  // under ring_mutex
  std::optional<boost::asio::steady_timer> retry_timer;
  std::chrono::milliseconds loop_backoff = kStallRetryInitial;  // under ring_mutex
  bool on_loop = false;       // under `mutex`
  bool flush_posted = false;  // under `mutex`: a LoopFlush is queued on the loop
  bool in_flight = false;     // under `mutex`: a batch is in the ring (or held)
  bool fail_posted = false;   // under `mutex`: a LoopFailQueued is queued on the loop

  std::atomic<std::uint64_t> last_position{0};  // stored under `mutex`
  std::atomic<std::uint64_t> durable_position{0};

  std::mutex release_mutex;                   // one ReleaseUpTo at a time
  std::mutex segments_mutex;                  // writer rotation vs ReleaseUpTo
  std::vector<std::uint64_t> segment_firsts;  // live segments, ascending; back() is current
};

Journal::Journal(Options options) : state_(std::make_unique<State>(std::move(options))) {}

Journal::~Journal() {
  Stop();
  spdlog::debug("journal: {} batches written", state_->batches_written.load());
}

Result<std::vector<PositionedEvent>> Journal::Recover(std::uint64_t after_position) {
  State& state = *state_;
  {
    std::lock_guard lock(state.mutex);
    if (state.started || state.recovered) Fatal("Recover() must be called once, before Start()");
  }
  const std::filesystem::path& directory = state.options.directory;
  std::error_code error;
  std::filesystem::create_directories(directory, error);
  if (error) {
    return MakeError(ErrorCode::kInternal, fmt::format("cannot create the journal directory {}: {}",
                                                       directory.string(), error.message()));
  }
  auto scan = format::ScanJournal(directory, after_position);
  if (!scan.ok()) return scan.error();
  std::vector<format::SegmentInfo>& segments = scan->segments;

  std::uint64_t found_last = 0;
  if (!segments.empty()) {
    found_last = segments.back().next_position - 1;
    if (segments.front().first_position > after_position + 1) {
      return MakeError(ErrorCode::kInternal,
                       fmt::format("the journal starts at position {} but the ledger has applied "
                                   "only up to {}: the events in between are lost",
                                   segments.front().first_position, after_position));
    }
  }
  state.directory_fd = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (state.directory_fd < 0) {
    return MakeError(ErrorCode::kInternal, Errno("cannot open the directory", directory));
  }
  // Positions never go back, even when the journal was released or removed: the ledger's
  // applied position is a floor.
  const std::uint64_t start = std::max(found_last, after_position);
  if (!segments.empty() && start > found_last) {
    // Every event on disk is already applied, and the next position would leave a gap inside
    // the last segment; drop the segments and start a new one at the new position.
    spdlog::warn(
        "journal: {} ends at position {} but the ledger applied up to {}; removing the "
        "applied segments",
        directory.string(), found_last, after_position);
    std::vector<std::filesystem::path> paths;
    for (const format::SegmentInfo& segment : segments) paths.push_back(segment.path);
    std::size_t removed = 0;
    if (Status status = state.RemoveSegmentsInOrder(paths, state.directory_fd, removed);
        !status.ok()) {
      return status.error();
    }
    segments.clear();
  }

  // A closed segment that still ends in zeroed space is a rotation cut short before its trim (by
  // an older binary, which created the next segment first; see ScanJournal): finish it.
  for (std::size_t i = 0; i + 1 < segments.size(); ++i) {
    const format::SegmentInfo& closed = segments[i];
    if (closed.valid_bytes == closed.file_bytes) continue;
    spdlog::info("journal: trimming the zeroed space left at the end of closed segment {}",
                 closed.path.string());
    const int fd = ::open(closed.path.c_str(), O_WRONLY | O_CLOEXEC);
    const bool trimmed =
        fd >= 0 && ::ftruncate(fd, static_cast<off_t>(closed.valid_bytes)) == 0 && ::fsync(fd) == 0;
    Status status =
        trimmed ? Status{} : MakeError(ErrorCode::kInternal, Errno("cannot trim", closed.path));
    if (fd >= 0) ::close(fd);
    if (!status.ok()) return status.error();
  }

  if (segments.empty()) {
    // No segment yet: the first batch creates it (PrepareBatch), so that a start on a disk with
    // no room left starts, and answers 503 until there is room, instead of exiting.
  } else {
    const format::SegmentInfo& last = segments.back();
    state.segment_fd = ::open(last.path.c_str(), O_WRONLY | O_CLOEXEC);
    if (state.segment_fd < 0) {
      return MakeError(ErrorCode::kInternal, Errno("cannot open", last.path));
    }
    if (last.valid_bytes < last.file_bytes) {
      // A torn tail: the last batch's fdatasync never returned, so nobody was acknowledged.
      // (Or only the zeroed space the writer keeps ahead of its records: nothing to report.)
      if (!last.zero_tail) {
        spdlog::warn("journal: cutting a torn tail of {} bytes off {} (after position {})",
                     last.file_bytes - last.valid_bytes, last.path.string(), found_last);
      }
      if (::ftruncate(state.segment_fd, static_cast<off_t>(last.valid_bytes)) != 0 ||
          ::fsync(state.segment_fd) != 0) {
        return MakeError(ErrorCode::kInternal, Errno("cannot truncate", last.path));
      }
    }
    state.segment_size = last.valid_bytes;
    state.zeroed_until = last.valid_bytes;
    std::lock_guard lock(state.segments_mutex);
    for (const format::SegmentInfo& segment : segments) {
      state.segment_firsts.push_back(segment.first_position);
    }
  }

  std::lock_guard lock(state.mutex);
  state.last_position.store(start);
  state.durable_position.store(start);
  state.recovered = true;
  return std::move(scan->events);
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

void Journal::ReleaseUpTo(std::uint64_t applied_position) {
  State& state = *state_;
  std::lock_guard release_lock(state.release_mutex);
  std::vector<std::filesystem::path> releasable;
  {
    // A segment's last position is the next segment's first minus one; the current segment (the
    // last one) is never released: the writer appends to it.
    std::lock_guard lock(state.segments_mutex);
    for (std::size_t i = 0;
         i + 1 < state.segment_firsts.size() && state.segment_firsts[i + 1] - 1 <= applied_position;
         ++i) {
      releasable.push_back(state.options.directory /
                           format::SegmentFileName(state.segment_firsts[i]));
    }
  }
  if (releasable.empty()) return;
  // Its own descriptor: the writer's may be closed by Stop() while the applier releases.
  const int dir_fd = ::open(state.options.directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  std::size_t released = 0;
  Status removed =
      dir_fd < 0
          ? Status(MakeError(ErrorCode::kInternal, Errno("cannot open", state.options.directory)))
          : state.RemoveSegmentsInOrder(releasable, dir_fd, released);
  if (dir_fd >= 0) ::close(dir_fd);
  // Harmless: the events are applied, and replaying them changes nothing. The next call retries.
  if (!removed.ok())
    spdlog::warn("journal: releasing applied segments: {}", removed.error().message);
  std::lock_guard lock(state.segments_mutex);
  state.segment_firsts.erase(state.segment_firsts.begin(),
                             state.segment_firsts.begin() + static_cast<std::ptrdiff_t>(released));
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

Result<std::vector<PositionedEvent>> Journal::ReadAll(const std::filesystem::path& directory,
                                                      std::uint64_t after_position) {
  std::error_code error;
  if (!std::filesystem::is_directory(directory, error)) {
    return MakeError(ErrorCode::kNotFound,
                     fmt::format("no journal directory at {}", directory.string()));
  }
  auto scan = format::ScanJournal(directory, after_position);
  if (!scan.ok()) return scan.error();
  return std::move(scan->events);
}

}  // namespace redpacket::bus
