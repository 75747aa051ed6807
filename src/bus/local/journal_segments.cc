// The journal's segment files: writing into them, rotation, recovery at start, release.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <utility>

#include "bus/local/journal_format.h"
#include "bus/local/journal_impl.h"

namespace redpacket::bus {
namespace {

using domain::Error;
using domain::ErrorCode;
using domain::MakeError;
using domain::Result;
using domain::Status;
using journal_internal::Errno;
using journal_internal::Fatal;
using journal_internal::IsNoSpace;
namespace format = journal_internal;

Status SyncDirectory(int directory_fd, const std::filesystem::path& directory) {
  if (::fsync(directory_fd) != 0) {
    return MakeError(ErrorCode::kInternal, Errno("cannot fsync the directory", directory));
  }
  return {};
}

}  // namespace

// Tests stop or fail the process here (Options::step_hook); a no-op otherwise.
Status Journal::State::Step(RotationStep step) const {
  return options.step_hook ? options.step_hook(step) : Status{};
}

// A step of the write path: a hook's kUnavailable is a full disk (returned: the batch waits
// for room), any other error an I/O error (fatal, as a real one).
Status Journal::State::StepOrNoSpace(RotationStep step) const {
  Status result = Step(step);
  if (!result.ok() && result.error().code != ErrorCode::kUnavailable) {
    Fatal(result.error().message);
  }
  return result;
}

Error Journal::State::NoSpace(std::string_view what, const std::filesystem::path& path) const {
  return MakeError(ErrorCode::kUnavailable, Errno(what, path));
}

// Ends the current segment at its last record and closes it. Why before the next segment is
// created: a closed segment then never ends in zeroed space, whatever the point of a crash
// (docs/decisions.md §19). Its records were fdatasync'ed after their batch; the fsync here
// makes the new size durable.
Status Journal::State::CloseCurrentSegment() {
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
Status Journal::State::OpenNewSegment(std::uint64_t first_position) {
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
Status Journal::State::RemoveSegmentsInOrder(std::span<const std::filesystem::path> paths,
                                             int dir_fd, std::size_t& removed) const {
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
void Journal::State::StepOrFatal(RotationStep step) const {
  if (Status result = Step(step); !result.ok()) Fatal(result.error().message);
}

// Writes one batch to the current segment (rotating first if it is full) and fdatasyncs it.
// kUnavailable when the disk has no room for it: nothing of it is durable, and the same batch
// may be written again (at the same place). Any other failure aborts the process.
Status Journal::State::WriteAndSync(std::span<const PositionedEvent> batch) {
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
void Journal::State::RecordsWritten() {
  zeroed_until = std::max(zeroed_until, segment_size + buffer.size());
}

// Rotates if the segment is full (or creates the first one), encodes the batch into `buffer`
// for offset `segment_size`, and lays zeroed space under it where the disk has room. True when
// it began a segment (the test hooks' steps); kUnavailable when the disk has no room for it.
Result<bool> Journal::State::PrepareBatch(std::span<const PositionedEvent> batch) {
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

void Journal::State::SyncSegment() {
  if (::fdatasync(segment_fd) != 0) SyncFailed(errno);
}

void Journal::State::SyncFailed(int error) {
  // After a failed fsync the kernel may have dropped the dirty pages: retrying could report
  // success for data that is not on disk.
  errno = error;
  Fatal(Errno("fdatasync failed on the segment in", options.directory));
}

const std::vector<std::byte>& Journal::State::zeros() {
  static const std::vector<std::byte> chunk(kZeroChunkBytes);
  return chunk;
}

// kUnavailable when the disk has no room (`*written` says how much was written before);
// any other error aborts.
Status Journal::State::WriteAt(const std::byte* data, std::size_t size, std::size_t offset,
                               std::size_t* written_out) {
  std::size_t written = 0;
  Status status;
  while (written < size) {
    const ssize_t done =
        ::pwrite(segment_fd, data + written, size - written, static_cast<off_t>(offset + written));
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

void Journal::State::CloseFiles() {
  if (segment_fd >= 0) ::close(segment_fd);
  if (directory_fd >= 0) ::close(directory_fd);
  segment_fd = -1;
  directory_fd = -1;
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
