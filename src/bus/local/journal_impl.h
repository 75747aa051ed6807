// The journal's private parts, shared by its files: Journal::State and its I/O helpers.
#pragma once

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <vector>

#include "bus/local/journal.h"
#include "bus/local/uring_sync_writer.h"

namespace redpacket::bus {
namespace journal_internal {

// An I/O error other than a full disk, or a failed fsync, may have lost what was written: stop the
// process loudly (see Journal::Append); a restart recovers from what is on disk.
[[noreturn]] inline void Fatal(std::string_view what) {
  spdlog::critical("journal: {}", what);
  spdlog::default_logger()->flush();
  std::abort();
}

inline std::string Errno(std::string_view what, const std::filesystem::path& path) {
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
inline bool IsNoSpace(int error) { return error == ENOSPC || error == EDQUOT; }

inline constexpr std::chrono::milliseconds kStallRetryInitial{50};
inline constexpr std::chrono::milliseconds kStallRetryMax{2000};

}  // namespace journal_internal

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

  // --- journal_segments.cc: the segment files and the write path both writers take ---
  domain::Status Step(RotationStep step) const;
  domain::Status StepOrNoSpace(RotationStep step) const;
  domain::Error NoSpace(std::string_view what, const std::filesystem::path& path) const;
  domain::Status CloseCurrentSegment();
  domain::Status OpenNewSegment(std::uint64_t first_position);
  domain::Status RemoveSegmentsInOrder(std::span<const std::filesystem::path> paths, int dir_fd,
                                       std::size_t& removed) const;
  void StepOrFatal(RotationStep step) const;
  domain::Status WriteAndSync(std::span<const PositionedEvent> batch);
  void RecordsWritten();
  domain::Result<bool> PrepareBatch(std::span<const PositionedEvent> batch);
  void SyncSegment();
  [[noreturn]] void SyncFailed(int error);
  static constexpr std::size_t kZeroChunkBytes = 4u << 20;
  static const std::vector<std::byte>& zeros();
  domain::Status WriteAt(const std::byte* data, std::size_t size, std::size_t offset,
                         std::size_t* written_out = nullptr);
  void CloseFiles();

  // --- journal.cc: the queue's batches, the stall and the completions, for both writers ---
  void GiveUp(std::span<const PositionedEvent> batch);
  std::vector<Completion> TakeFailures(std::vector<Completion>& batch_done,
                                       std::vector<Failure>& batch_failed);
  std::vector<Completion> TakeQueuedFailuresLocked();
  static Completion Bind(Failure failed);
  static void BindFailures(std::vector<Completion>& done, std::vector<Failure>& failed,
                           std::vector<Completion>& failures);
  void EnterStall(const std::string& reason);
  void LeaveStall();
  void TakeBatchLocked(std::vector<PositionedEvent>& batch, std::vector<Completion>& batch_done,
                       std::vector<Failure>& batch_failed);
  DurableBatch MarkDurable(std::vector<PositionedEvent>& batch,
                           std::vector<Completion>& batch_done);
  void RunDurable(DurableBatch& finished);

  // --- journal_thread_writer.cc: Start(), a writer thread and a completion thread ---
  void RunWriter();
  static DurableBatch FailuresOnly(std::vector<Completion> failures);
  void ToCompleter(DurableBatch finished);
  bool WriteUntilRoom(std::vector<PositionedEvent>& batch, std::vector<Completion>& batch_done,
                      std::vector<Failure>& batch_failed);
  void RunCompleter();

  // --- journal_loop_writer.cc: StartOnLoop(), the loop's thread drives io_uring ---
  void LoopFlush();
  void SubmitFlight();
  void OnRingEvent();
  domain::Status FinishFlight(const UringSyncWriter::Outcome& outcome);
  void HoldFlight(const domain::Error& error);
  void RetryFlight();
  void LoopFailQueued();
  void StopLoop();

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
  std::mutex ring_mutex;      // the loop's handlers vs Stop(); guards uring, ring_event, flight
  bool loop_stopped = false;  // under ring_mutex
  std::vector<PositionedEvent> flight;  // the batch in flight
  std::vector<Completion> flight_done;
  std::vector<Failure> flight_failed;
  // The batch in flight waits for room on the disk (not in the ring): retry_timer resubmits it.
  bool flight_held = false;  // under ring_mutex
  std::optional<boost::asio::steady_timer> retry_timer;
  // Under ring_mutex: the wait before the held batch is written again.
  std::chrono::milliseconds loop_backoff = journal_internal::kStallRetryInitial;
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

}  // namespace redpacket::bus
