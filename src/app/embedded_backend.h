// Embedded mode's backend, wired here: the local journal (group commit) as the bus, the memory
// store on it, the SQLite ledger (a writer, a reader and the worker's own connection), and the
// worker applying the journal to the ledger. Not thread-safe: drive it from the main thread.
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>

#include "bus/local/journal.h"
#include "bus/local/journal_sink.h"
#include "bus/local/journal_source.h"
#include "domain/clock.h"
#include "http/ops/metrics.h"
#include "ledger/ledger.h"
#include "service/red_packet_service.h"
#include "worker/worker.h"

namespace redpacket::app {

struct EmbeddedOptions {
  std::filesystem::path data_dir = "./data";
  // The journal's directory is data_dir/journal, or data_dir/journal-<name> with its own applied
  // position in the ledger.
  std::string journal_name;
  std::size_t journal_segment_bytes = 64u << 20;
  std::chrono::microseconds journal_gather{100};
  // Write the journal from an I/O loop through io_uring (AttachLoop) instead of its own threads.
  bool journal_on_loop = false;
  // The worker applies the journal in batches at least this far apart (or at once when a batch
  // is full): fewer, larger SQLite transactions leave the disk to the journal's fsyncs, which
  // are what a grab's reply waits for.
  std::chrono::milliseconds apply_interval{20};
  std::size_t apply_batch_events = 8192;
  // "Now" of the service and the memory store (tests hand in a ManualTimeSource); must outlive
  // the backend and the service.
  const domain::TimeSource* clock = &domain::SystemTime();
};

class EmbeddedBackend {
 public:
  explicit EmbeddedBackend(EmbeddedOptions options);
  ~EmbeddedBackend();

  // Blocking: opens the ledger, migrates it, recovers the journal (what it holds beyond the
  // ledger is handed to the worker), then starts the journal (unless journal_on_loop: then
  // AttachLoop does). Throws std::runtime_error (startup error).
  void Start();
  // Blocking: the worker applies what the journal held beyond the ledger (so the ledger is
  // complete before the service rebuilds the open packets from it; while the ledger cannot
  // write, this waits and /readyz says why), then runs on its own thread. Call after Start(),
  // before the service starts; the server may already answer (503 until the service is ready).
  void CatchUp();
  // With journal_on_loop: starts the journal on `loop` (the server's first I/O loop), or on
  // threads of its own where io_uring is unavailable. Call after Start(), before the service
  // starts. The loop must stop before Stop() and be destroyed after it.
  void AttachLoop(boost::asio::io_context& loop);
  // The service's parts: SQLite writer and reader, the memory store on the journal.
  service::ServiceParts MakeServiceParts();
  // Blocking: the journal makes durable and acknowledges what is queued, the worker applies
  // all of it, threads join. Call after the HTTP server stopped taking requests.
  void Stop();

  void AddMetrics(http::Metrics& metrics);
  // Where the store sends grabs and refunds (valid after Start()).
  bus::EventSink& sink() { return *sink_; }

 private:
  // Durable events are pending credits until the worker applies them.
  void AddPending(std::span<const bus::PositionedEvent> durable);
  std::filesystem::path LedgerFile() const { return options_.data_dir / "ledger.sqlite"; }

  EmbeddedOptions options_;
  service::PendingCredits pending_;
  std::unique_ptr<bus::Journal> journal_;
  std::unique_ptr<bus::JournalSink> sink_;
  std::unique_ptr<bus::JournalSource> source_;
  std::unique_ptr<ledger::Ledger> worker_ledger_;
  std::unique_ptr<worker::Worker> worker_;
  std::atomic<std::uint64_t> applied_position_{0};
  bus::Journal::DurableListener on_durable_;
  std::size_t recovered_events_ = 0;
  bool started_ = false;
  bool caught_up_ = false;
};

}  // namespace redpacket::app
