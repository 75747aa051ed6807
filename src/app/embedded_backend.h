// Embedded mode's backend, wired here: the local journal (group commit) as the bus, the SQLite
// ledger (the service's writer and reader, and the applier's own connection), and the applier
// applying the journal to the ledger; the sweep policy of the mode. Not thread-safe: drive it
// from the main thread.
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>

#include "app/components.h"
#include "applier/applier.h"
#include "bus/local/journal.h"
#include "bus/local/journal_sink.h"
#include "bus/local/journal_source.h"
#include "domain/clock.h"
#include "http/ops/metrics.h"
#include "ledger/ledger.h"
#include "service/red_packet_service.h"
#include "store/store.h"
#include "sweeper/sweeper.h"

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

// The journal and the applier, as a component: Start() opens and migrates the ledger and
// recovers the journal; Stop() makes durable and acknowledges what the journal holds and applies
// all of it. Also what the service and the sweeper need of this mode.
class EmbeddedBackend final : public Component, public service::DependencyChecks {
 public:
  explicit EmbeddedBackend(EmbeddedOptions options);
  ~EmbeddedBackend() override;

  std::string name() const override { return "embedded backend"; }
  // Blocking: opens the ledger, migrates it, recovers the journal (what it holds beyond the
  // ledger is handed to the applier), then starts the journal (unless journal_on_loop: then
  // AttachLoop does). Throws std::runtime_error (startup error).
  void Start() override;
  // Blocking: the journal makes durable and acknowledges what is queued, the applier applies
  // all of it, threads join. Call after the HTTP server stopped taking requests.
  void Stop() override;

  // Blocking: the applier applies what the journal held beyond the ledger (so the ledger is
  // complete before the service rebuilds the open packets from it; while the ledger cannot
  // write, this waits and /readyz says why), then runs on its own thread. Call after Start(),
  // before the service starts; the server may already answer (503 until the service is ready).
  void CatchUp();
  // With journal_on_loop: starts the journal on `loop` (the server's first I/O loop), or on
  // threads of its own where io_uring is unavailable. Call after Start(), before the service
  // starts. The loop must stop before Stop() and be destroyed after it.
  void AttachLoop(boost::asio::io_context& loop);

  // What the service takes (valid after Start()): a new connection to the ledger, the sink the
  // memory store records grabs and refunds in, the credits not applied yet.
  std::unique_ptr<ledger::Ledger> OpenLedger() const;
  bus::EventSink& sink() { return *sink_; }
  service::PendingCredits& pending() { return pending_; }
  // The highest journal position the ledger has applied (the sweeper evicts only below it).
  std::uint64_t applied_position() const { return applied_position_.load(); }
  const domain::TimeSource& clock() const { return *options_.clock; }
  // For /readyz: "journal" and "ledger", each "ok" or since when and why it is stalled.
  std::map<std::string, std::string> Checks() const override;

  void AddMetrics(http::Metrics& metrics);

 private:
  // Durable events are pending credits until the applier applies them.
  void AddPending(std::span<const bus::PositionedEvent> durable);
  std::filesystem::path LedgerFile() const { return options_.data_dir / "ledger.sqlite"; }

  EmbeddedOptions options_;
  service::PendingCredits pending_;
  std::unique_ptr<bus::Journal> journal_;
  std::unique_ptr<bus::JournalSink> sink_;
  std::unique_ptr<bus::JournalSource> source_;
  std::unique_ptr<ledger::Ledger> applier_ledger_;
  std::unique_ptr<applier::Applier> applier_;
  std::atomic<std::uint64_t> applied_position_{0};
  bus::Journal::DurableListener on_durable_;
  std::size_t recovered_events_ = 0;
  bool started_ = false;
  bool caught_up_ = false;
};

// Embedded mode's sweep: the memory store's, evicting finished packets only once the ledger has
// applied their events.
class EmbeddedSweep final : public sweeper::SweepPolicy {
 public:
  EmbeddedSweep(store::PacketStore& store, const EmbeddedBackend& backend,
                std::chrono::milliseconds finished_retention)
      : store_(store), backend_(backend), retention_(finished_retention) {}
  std::optional<store::SweepStats> SweepOnce(domain::TimePoint now) override {
    return store_.Sweep(now, backend_.applied_position(), retention_);
  }

 private:
  store::PacketStore& store_;
  const EmbeddedBackend& backend_;
  std::chrono::milliseconds retention_;
};

}  // namespace redpacket::app
