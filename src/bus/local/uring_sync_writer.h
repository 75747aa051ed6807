// One io_uring that writes a buffer into a file and then fdatasyncs the file, as one linked pair
// of requests, and signals an eventfd when the pair has finished (once: a successful write posts
// no completion of its own): an event loop can make a batch
// durable without a thread of its own (the kernel's io-wq worker runs the fsync) and learn of it
// through its poller. At most one pair is in flight. Not thread-safe: one caller at a time.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>

#include "domain/status.h"

struct io_uring;

namespace redpacket::bus {

class UringSyncWriter {
 public:
  // How a pair ended. `written`: bytes written, or -errno. `synced`: 0, or -errno (-ECANCELED
  // when the write failed or was short: the link is broken and the fsync never ran).
  struct Outcome {
    std::int64_t written = 0;
    int synced = 0;
  };

  // Fails (kUnavailable) where the kernel or a seccomp filter refuses io_uring.
  static domain::Result<std::unique_ptr<UringSyncWriter>> Create();
  ~UringSyncWriter();
  UringSyncWriter(const UringSyncWriter&) = delete;
  UringSyncWriter& operator=(const UringSyncWriter&) = delete;

  // Readable once a pair has finished (watch it, then call Poll). Owned by this object.
  int event_fd() const { return event_fd_; }

  // Non-blocking. Queues pwrite(fd, data, size, offset) then fdatasync(fd), linked, and submits
  // them. `data` must stay valid until the pair has finished. Fails if a pair is in flight or
  // the submission fails.
  domain::Status Submit(int fd, const std::byte* data, std::size_t size, off_t offset);
  bool in_flight() const { return in_flight_; }

  // Non-blocking: the outcome once both requests have finished (the pair is then over), else
  // nullopt. Also empties the eventfd.
  std::optional<Outcome> Poll();
  // Blocking: waits for the pair in flight and returns its outcome (nullopt if none is).
  std::optional<Outcome> Wait();

 private:
  UringSyncWriter(std::unique_ptr<io_uring> ring, int event_fd);
  // Consumes finished requests; true once both of the pair have finished.
  bool Reap(bool block);

  std::unique_ptr<io_uring> ring_;
  int event_fd_ = -1;
  bool in_flight_ = false;
  bool write_seen_ = false;  // the write posted a completion (only when it failed or was short)
  bool sync_seen_ = false;
  Outcome outcome_;
};

}  // namespace redpacket::bus
