// UringSyncWriter: liburing's linked write + fsync, completion signalled on an eventfd.
#include "bus/local/uring_sync_writer.h"

#include <liburing.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace redpacket::bus {
namespace {

using domain::ErrorCode;
using domain::MakeError;

constexpr std::uint64_t kWriteTag = 1;
constexpr std::uint64_t kSyncTag = 2;

std::string Reason(int error) { return std::strerror(error); }

}  // namespace

domain::Result<std::unique_ptr<UringSyncWriter>> UringSyncWriter::Create() {
  auto ring = std::make_unique<io_uring>();
  // Two entries: the pair. Completions go to a queue twice that size.
  if (const int result = io_uring_queue_init(2, ring.get(), 0); result < 0) {
    return MakeError(ErrorCode::kUnavailable, "io_uring_queue_init: " + Reason(-result));
  }
  const int event_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (event_fd < 0) {
    const int error = errno;
    io_uring_queue_exit(ring.get());
    return MakeError(ErrorCode::kUnavailable, "eventfd: " + Reason(error));
  }
  if (const int result = io_uring_register_eventfd(ring.get(), event_fd); result < 0) {
    ::close(event_fd);
    io_uring_queue_exit(ring.get());
    return MakeError(ErrorCode::kUnavailable, "io_uring_register_eventfd: " + Reason(-result));
  }
  return std::unique_ptr<UringSyncWriter>(new UringSyncWriter(std::move(ring), event_fd));
}

UringSyncWriter::UringSyncWriter(std::unique_ptr<io_uring> ring, int event_fd)
    : ring_(std::move(ring)), event_fd_(event_fd) {}

UringSyncWriter::~UringSyncWriter() {
  // The kernel may still write from the caller's buffer: wait before letting it go.
  if (in_flight_) Wait();
  io_uring_queue_exit(ring_.get());
  ::close(event_fd_);
}

domain::Status UringSyncWriter::Submit(int fd, const std::byte* data, std::size_t size,
                                       off_t offset) {
  if (in_flight_) return MakeError(ErrorCode::kInternal, "a write is already in flight");
  io_uring_sqe* write = io_uring_get_sqe(ring_.get());
  io_uring_sqe* sync = write ? io_uring_get_sqe(ring_.get()) : nullptr;
  if (write == nullptr || sync == nullptr) {
    return MakeError(ErrorCode::kInternal, "io_uring: no free submission entry");
  }
  io_uring_prep_write(write, fd, data, static_cast<unsigned>(size), static_cast<__u64>(offset));
  // Linked: the fsync starts only after the write completed in full (a failed or short write
  // cancels it), so a successful fsync covers these bytes.
  // Exactly one completion per pair (one wake-up per batch, not two): a write that succeeds in
  // full posts none and the fsync posts its own; a failed or short write posts its own and
  // cancels the fsync, whose completion the kernel then skips too.
  write->flags |= IOSQE_IO_LINK | IOSQE_CQE_SKIP_SUCCESS;
  io_uring_sqe_set_data64(write, kWriteTag);
  io_uring_prep_fsync(sync, fd, IORING_FSYNC_DATASYNC);
  io_uring_sqe_set_data64(sync, kSyncTag);
  int submitted;
  do {
    submitted = io_uring_submit(ring_.get());
  } while (submitted == -EINTR);
  if (submitted < 0) {
    return MakeError(ErrorCode::kInternal, "io_uring_submit: " + Reason(-submitted));
  }
  if (submitted != 2) {
    // Cannot happen with an empty ring of two entries; if it did, waiting would hang.
    return MakeError(ErrorCode::kInternal, "io_uring_submit took " + std::to_string(submitted) +
                                               " of 2 requests");
  }
  in_flight_ = true;
  write_seen_ = false;
  sync_seen_ = false;
  outcome_ = {.written = static_cast<std::int64_t>(size), .synced = 0};
  return {};
}

bool UringSyncWriter::Reap(bool block) {
  while (!sync_seen_ && !write_seen_) {
    io_uring_cqe* cqe = nullptr;
    const int result = block ? io_uring_wait_cqe(ring_.get(), &cqe)
                             : io_uring_peek_cqe(ring_.get(), &cqe);
    if (result == -EINTR) continue;
    if (result == -EAGAIN || cqe == nullptr) return false;  // not finished yet (non-blocking)
    if (result < 0) return false;
    if (io_uring_cqe_get_data64(cqe) == kWriteTag) {
      outcome_.written = cqe->res;
      outcome_.synced = -ECANCELED;
      write_seen_ = true;
    } else {
      outcome_.synced = cqe->res;
      sync_seen_ = true;
    }
    io_uring_cqe_seen(ring_.get(), cqe);
  }
  return true;
}

std::optional<UringSyncWriter::Outcome> UringSyncWriter::Poll() {
  std::uint64_t counter;
  while (::read(event_fd_, &counter, sizeof counter) < 0 && errno == EINTR) {
  }
  if (!in_flight_ || !Reap(false)) return std::nullopt;
  in_flight_ = false;
  return outcome_;
}

std::optional<UringSyncWriter::Outcome> UringSyncWriter::Wait() {
  if (!in_flight_ || !Reap(true)) return std::nullopt;
  in_flight_ = false;
  return outcome_;
}

}  // namespace redpacket::bus
