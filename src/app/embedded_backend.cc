// EmbeddedBackend: journal recovery, the applier, and what the service needs in embedded mode.
#include "app/embedded_backend.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <stdexcept>

#include "ledger/sqlite/sqlite_ledger.h"

namespace redpacket::app {

EmbeddedBackend::EmbeddedBackend(EmbeddedOptions options) : options_(std::move(options)) {}

EmbeddedBackend::~EmbeddedBackend() { Stop(); }

void EmbeddedBackend::Start() {
  std::error_code error;
  std::filesystem::create_directories(options_.data_dir, error);
  if (error) {
    throw std::runtime_error(fmt::format("cannot create data directory {}: {}",
                                         options_.data_dir.string(), error.message()));
  }
  // The applier's writes wait behind creates and deposits that are waiting (a client waits
  // for those; the applier's work is deferred).
  applier_ledger_ =
      ledger::OpenSqliteLedger(LedgerFile(), false, options_.journal_name, true, *options_.clock);
  if (auto status = applier_ledger_->Migrate(); !status) {
    throw std::runtime_error("cannot migrate the ledger: " + status.error().message);
  }
  auto offsets = applier_ledger_->AppliedOffsets();
  if (!offsets) {
    throw std::runtime_error("cannot read the ledger's position: " + offsets.error().message);
  }
  const std::uint64_t applied = offsets->contains(0) ? offsets->at(0) : 0;

  bus::Journal::Options journal_options;
  journal_options.directory =
      options_.data_dir /
      (options_.journal_name.empty() ? std::string("journal") : "journal-" + options_.journal_name);
  journal_options.segment_bytes = options_.journal_segment_bytes;
  journal_options.gather_window = options_.journal_gather;
  journal_options.clock = options_.clock;
  journal_ = std::make_unique<bus::Journal>(journal_options);
  auto recovered = journal_->Recover(applied);
  if (!recovered)
    throw std::runtime_error("cannot recover the journal: " + recovered.error().message);
  sink_ = std::make_unique<bus::JournalSink>(*journal_);
  source_ = std::make_unique<bus::JournalSource>(*journal_);

  applier::ApplierOptions applier_options;
  applier_options.name = "rp-applier";
  applier_options.max_batch_events = options_.apply_batch_events;
  applier_options.poll_wait = std::chrono::milliseconds(0);
  applier_options.batch_interval = options_.apply_interval;
  applier_options.background = true;
  applier_options.clock = options_.clock;
  applier_ =
      std::make_unique<applier::Applier>(*source_, *applier_ledger_, applier_options,
                                         [this](std::span<const bus::ConsumedMessage> handled) {
                                           std::uint64_t last = 0;
                                           for (const auto& message : handled) {
                                             last = std::max(last, message.offset);
                                           }
                                           pending_.Remove(last);
                                           if (last > applied_position_.load())
                                             applied_position_.store(last);
                                         });

  // Recovery: every durable grab and refund the ledger has not applied yet is applied by
  // CatchUp() (a poison event is set aside, never a reason not to start).
  applied_position_ = applied;
  pending_.Reset(applied);
  recovered_events_ = recovered->size();
  if (!recovered->empty()) {
    AddPending(*recovered);
    source_->Push(*recovered);
  }

  on_durable_ = [this](std::span<const bus::PositionedEvent> durable) {
    AddPending(durable);
    source_->Push(durable);
  };
  if (!options_.journal_on_loop) journal_->Start(on_durable_);
  started_ = true;
}

void EmbeddedBackend::CatchUp() {
  if (!started_ || caught_up_) return;
  // Blocking while the ledger cannot write (its disk full): the applier retries, /readyz says
  // why, and the process stays up rather than exiting into a crash loop.
  applier_->Drain();
  if (recovered_events_ > 0) spdlog::info("recovery: applied {} journal events", recovered_events_);
  journal_->ReleaseUpTo(applied_position_.load());
  applier_->Start();
  caught_up_ = true;
}

void EmbeddedBackend::AddPending(std::span<const bus::PositionedEvent> durable) {
  std::vector<service::PendingEvent> events;
  events.reserve(durable.size());
  for (const auto& positioned : durable) {
    events.push_back({positioned.position, positioned.event.user_id, positioned.event.amount_cents});
  }
  pending_.Add(events);
}

void EmbeddedBackend::AttachLoop(boost::asio::io_context& loop) {
  if (!options_.journal_on_loop) return;
  if (!journal_->StartOnLoop(on_durable_, loop)) journal_->Start(on_durable_);
}

std::unique_ptr<ledger::Ledger> EmbeddedBackend::OpenLedger() const {
  return ledger::OpenSqliteLedger(LedgerFile(), false, options_.journal_name, false,
                                  *options_.clock);
}

std::map<std::string, std::string> EmbeddedBackend::Checks() const {
  std::map<std::string, std::string> checks{{"journal", "ok"}, {"ledger", "ok"}};
  if (!journal_ || !applier_) return checks;
  if (const auto stall = journal_->stall()) {
    checks["journal"] =
        fmt::format("stalled since {}: {}", domain::FormatTime(stall->since), stall->reason);
  }
  if (const auto stall = applier_->stall()) {
    checks["ledger"] = fmt::format("applier stalled since {}: {}", domain::FormatTime(stall->since),
                                   stall->reason);
  }
  return checks;
}

void EmbeddedBackend::Stop() {
  if (!started_) return;
  started_ = false;
  // The journal acknowledges what is queued; the applier then applies all of it before it goes
  // (what the ledger cannot write now stays in the journal for the next start).
  journal_->Stop();
  applier_->Stop();
  source_->Close();
  applier_->Drain();
  spdlog::info("embedded backend stopped: journal position {}, applied {}",
               journal_->durable_position(), applied_position_.load());
}

void EmbeddedBackend::AddMetrics(http::Metrics& metrics) {
  auto journal = [this](auto read) {
    return [this, read] { return static_cast<double>(read(*journal_)); };
  };
  metrics.AddGauge("redpacket_journal_queued_events",
                   "Grabs and refunds waiting for the journal's fsync",
                   journal([](bus::Journal& j) { return j.queued_events(); }));
  metrics.AddGauge("redpacket_journal_batches_total",
                   "Journal write batches (one fdatasync each); events per fsync = position / this",
                   journal([](bus::Journal& j) { return j.batches_written(); }));
  metrics.AddGauge("redpacket_journal_durable_position",
                   "Last durable journal position (grabs and refunds)",
                   journal([](bus::Journal& j) { return j.durable_position(); }));
  metrics.AddGauge("redpacket_ledger_applied_position",
                   "Last journal position applied to the ledger",
                   [this] { return static_cast<double>(applied_position_.load()); });
  metrics.AddGauge("redpacket_ledger_lag_events",
                   "Durable journal events not yet applied to the ledger", [this] {
                     const auto applied = applied_position_.load();
                     const auto durable = journal_->durable_position();
                     return durable > applied ? static_cast<double>(durable - applied) : 0.0;
                   });
  metrics.AddGauge("redpacket_worker_dead_lettered_total",
                   "Events set aside (the ledger's dead_letters table) with their reason",
                   [this] { return static_cast<double>(applier_->stats().dead_lettered); });
  metrics.AddGauge("redpacket_applier_stalled",
                   "1 while the ledger cannot write and the applier retries (nothing is applied)",
                   [this] { return applier_->stall() ? 1.0 : 0.0; });
  metrics.AddGauge("redpacket_journal_stalled",
                   "1 while the journal's disk is full (grabs answer 503, nothing is acknowledged)",
                   [this] { return journal_->stall() ? 1.0 : 0.0; });
  metrics.AddGauge("redpacket_worker_batches_total", "Ledger transactions of the applier",
                   [this] { return static_cast<double>(applier_->stats().batches); });
}

}  // namespace redpacket::app
