// A local append-only journal with group commit: the embedded twin of Kafka. Grabs and refunds
// are appended here and acknowledged once fsync'ed; the ledger applies them later, exactly once.
// A full disk stalls it: the writer keeps the batch and writes it again once there is room,
// while every completion that can fail fails at once (nothing is acknowledged meanwhile).
// Thread-safe: Append/WhenDurable from any thread. Two ways to run: Start() (a writer thread and a
// completion thread: completions run on the latter, in position order, while the writer already
// syncs the next batch) or StartOnLoop() (no thread of its own: an event loop's thread submits
// each batch's write + fdatasync through io_uring and runs the completions when they finish).
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "domain/clock.h"
#include "domain/packet.h"
#include "domain/status.h"

namespace boost::asio {
class io_context;
}

namespace redpacket::bus {

struct PositionedEvent {
  std::uint64_t position = 0;  // 1, 2, 3, ... across the journal's whole life, never reused
  domain::LedgerEvent event;
};

// The steps that end one segment and begin the next, in the order the writer takes them, then
// those of ReleaseUpTo. A crash before any of them leaves a journal that Recover() accepts
// (docs/decisions.md §19); tests stop or fail the process at each through Options::step_hook.
enum class RotationStep {
  kTrimClosing,      // ftruncate the full segment to its last record (drops its zeroed space)
  kSyncClosing,      // fsync it: the trim is durable before the next segment exists
  kCreateNext,       // create journal-<next position>.log, empty
  kSyncDirectory,    // fsync the directory: the new name is durable
  kPreallocate,      // write the zeroed space ahead of the new segment's first batch
  kWriteFirstBatch,  // write the first batch's records into it
  kSyncFirstBatch,   // fdatasync them (its completions, the acknowledgements, run after)
  kRemoveReleased,   // ReleaseUpTo: delete the oldest applied segment
  kSyncAfterRemove,  // ReleaseUpTo: fsync the directory before deleting the next one
  kWriteBatch,       // before every batch's write (after kWriteFirstBatch in a new segment)
};

class Journal {
 public:
  struct Options {
    std::filesystem::path directory;         // segments live here as journal-<first position>.log
    std::size_t segment_bytes = 64u << 20;   // rotate to a new segment past this size
    std::size_t max_batch_events = 4096;     // at most this many events per fsync
    // Before an fsync the writer waits up to this long for the batch to grow back to the size
    // of the previous one (never longer, never when the previous batch was a single event):
    // under a steady crowd it means fewer, fuller fsyncs; a lone request waits no extra time.
    std::chrono::microseconds gather_window{100};
    // Tests only: called before each RotationStep, on the thread that takes it. A non-ok status
    // is taken as that step's I/O error (what the journal does on a real one); kUnavailable at
    // kCreateNext, kPreallocate, kWriteFirstBatch or kWriteBatch as no room on the disk
    // (ENOSPC) there.
    std::function<domain::Status(RotationStep)> step_hook;
    // "Now" of a stall's start (Stall::since; must outlive the journal).
    const domain::TimeSource* clock = &domain::SystemTime();
  };
  using Completion = std::function<void()>;
  // Runs instead of a Completion when the journal cannot make the event durable promptly.
  using Failure = std::function<void(domain::Error)>;
  struct Stall {
    domain::TimePoint since;  // the first write that found no room
    std::string reason;       // the last one's error
  };
  // Called on the completion thread after each durable batch, in position order (feeds the applier).
  using DurableListener = std::function<void(std::span<const PositionedEvent>)>;

  explicit Journal(Options options);
  ~Journal();  // Stop()s if still running
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

  // Blocking; call once before Start(). Opens or creates the directory, reads every segment,
  // truncates a torn tail (a short or corrupt record at the end of the last segment: it was never
  // acknowledged) and the zeroed space a rotation cut short left in a closed segment, and returns
  // the events with position > after_position in order. A corrupt record that is not at the tail
  // is an error (never silently skipped).
  domain::Result<std::vector<PositionedEvent>> Recover(std::uint64_t after_position);

  // Starts the writer and completion threads.
  void Start(DurableListener on_durable);
  // Starts without threads: `loop`'s thread takes what is queued after each round of its handlers,
  // writes it and fdatasyncs it with one io_uring submission (at most one batch in flight; what
  // comes meanwhile forms the next), and runs the batch's listener, completions and waiters on
  // the loop's thread when the fsync has finished. Returns false, having started nothing, where
  // io_uring is unavailable (then call Start()). The loop must not run the journal's handlers
  // after the journal is destroyed: Stop() the journal before the loop is destroyed, and stop the
  // loop (or keep the journal) until then.
  bool StartOnLoop(DurableListener on_durable, boost::asio::io_context& loop);

  // Non-blocking. Assigns the next position and queues the event; the writer thread writes queued
  // events in one batch, fdatasyncs once; the completion thread then runs each `done` in order.
  // Returns the position. The event is never dropped: when the disk has no room, the batch waits
  // (stall) and is written once there is room, then `done` runs. Why it never gives an event up:
  // state already handed out in memory cannot be taken back. Any other write error, and any
  // failed fsync, aborts the process (see docs/decisions.md §29).
  std::uint64_t Append(const domain::LedgerEvent& event, Completion done);
  // As Append, but while the journal is stalled `failed` runs instead of `done`, soon (on the
  // completion thread, or the loop's): the event stays queued and becomes durable (and is
  // applied) once there is room, but nobody is told so. Exactly one of the two runs (neither
  // if the process stops first).
  std::uint64_t Append(const domain::LedgerEvent& event, Completion done, Failure failed);

  // Runs `done` once every position <= `position` is durable (at once, on the calling thread, if it
  // already is; else on the completion thread).
  void WhenDurable(std::uint64_t position, Completion done);
  // As WhenDurable, but `failed` runs instead when the journal stalls before `position` is
  // durable (at once, on the calling thread, if it is stalled now).
  void WhenDurable(std::uint64_t position, Completion done, Failure failed);

  // Never blocks: kUnavailable ("the journal's disk is full; retry") while the journal is
  // stalled, so that a caller decides nothing new that could not be written.
  domain::Status Accepting() const;
  // Since when and why the journal is stalled; nullopt while it writes.
  std::optional<Stall> stall() const;

  std::uint64_t durable_position() const;
  std::uint64_t last_position() const;  // the last position handed out by Append
  std::size_t queued_events() const;    // appended, not yet durable (a metric)
  std::uint64_t batches_written() const;  // fsyncs so far; events per fsync = positions / this

  // Blocking (a directory fsync per deleted segment). Segments whose every event is
  // <= applied_position are deleted, oldest first, each deletion durable before the next: a crash
  // leaves the newest segments, never a gap. Call from one thread at a time.
  void ReleaseUpTo(std::uint64_t applied_position);

  // Blocking: writes and fsyncs everything queued, runs the completions (on the caller's thread
  // for what the loop had not finished, with StartOnLoop), joins the threads. With the disk
  // still full, it tries once more and then drops what it cannot write (none of it was
  // acknowledged).
  void Stop();

  // Reads every event with position > after_position without changing any file (for audit).
  static domain::Result<std::vector<PositionedEvent>> ReadAll(const std::filesystem::path& directory,
                                                               std::uint64_t after_position);

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace redpacket::bus
