// RedPacketService: API operations and the embedded engine's recovery, applier and sweeper.
#include "service/red_packet_service.h"

#include <pthread.h>

#include <stdexcept>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "ledger/sqlite/sqlite_ledger.h"
#include "store/memory/memory_store.h"

namespace redpacket::service {
namespace {

using domain::ErrorCode;
using domain::MakeError;

constexpr std::size_t kApplyChunk = 8192;  // events per ledger transaction

}  // namespace

RedPacketService::RedPacketService(ServiceOptions options) : options_(std::move(options)) {}

RedPacketService::~RedPacketService() { Stop(); }

void RedPacketService::Start() {
  std::error_code error;
  std::filesystem::create_directories(options_.data_dir, error);
  if (error) {
    throw std::runtime_error(fmt::format("cannot create data directory {}: {}",
                                         options_.data_dir.string(), error.message()));
  }
  const auto ledger_file = options_.data_dir / "ledger.sqlite";
  writer_ = std::make_unique<LedgerWorker>(
      "rp-ledger-write", ledger::OpenSqliteLedger(ledger_file, false, options_.journal_name), true);
  ledger::Ledger& ledger = writer_->ledger();
  if (Status status = ledger.Migrate(); !status) {
    throw std::runtime_error("cannot migrate the ledger: " + status.error().message);
  }
  reader_ = std::make_unique<LedgerWorker>(
      "rp-ledger-read", ledger::OpenSqliteLedger(ledger_file, false, options_.journal_name));

  // Recovery: every durable grab and refund the ledger has not applied yet is applied now, so the
  // ledger is complete before the packets are rebuilt from it.
  bus::Journal::Options journal_options;
  journal_options.directory =
      options_.data_dir / (options_.journal_name.empty() ? std::string("journal")
                                                         : "journal-" + options_.journal_name);
  journal_options.segment_bytes = options_.journal_segment_bytes;
  journal_options.gather_window = options_.journal_gather;
  journal_ = std::make_unique<bus::Journal>(journal_options);
  auto offsets = ledger.AppliedOffsets();
  if (!offsets) throw std::runtime_error("cannot read the ledger's position: " + offsets.error().message);
  const std::uint64_t applied = offsets->contains(0) ? offsets->at(0) : 0;
  auto recovered = journal_->Recover(applied);
  if (!recovered) throw std::runtime_error("cannot recover the journal: " + recovered.error().message);
  std::vector<domain::LedgerEvent> events;
  for (std::size_t begin = 0; begin < recovered->size(); begin += kApplyChunk) {
    const std::size_t end = std::min(recovered->size(), begin + kApplyChunk);
    events.clear();
    for (std::size_t i = begin; i < end; ++i) events.push_back((*recovered)[i].event);
    if (Status status = ledger.ApplyEvents(events, {{0, (*recovered)[end - 1].position}}); !status) {
      throw std::runtime_error("cannot apply the journal to the ledger: " + status.error().message);
    }
  }
  applied_position_ = recovered->empty() ? applied : recovered->back().position;
  journal_->ReleaseUpTo(applied_position_);
  if (!recovered->empty()) spdlog::info("recovery: applied {} journal events", recovered->size());

  sink_ = std::make_unique<bus::JournalSink>(*journal_);
  if (options_.store_factory) {
    // Why no reload here: the external store (Redis, AOF and replicas) keeps the packets and
    // their grabs across API-server restarts and is shared by every server; reloading the
    // ledger's view on each start would be at best redundant (Add is idempotent) and costly (a
    // million-share packet is 100 script calls, per server start), and the ledger of one server
    // may lag grabs that other servers' journals have not applied yet.
    store_ = options_.store_factory(*sink_);
    if (!store_) throw std::runtime_error("the store factory made no store");
  } else {
    store_ = store::MakeMemoryStore(*sink_);
    auto unfinished = ledger.LoadUnfinishedPackets();
    if (!unfinished) throw std::runtime_error("cannot load packets: " + unfinished.error().message);
    for (const auto& packet : *unfinished) store_->Add(packet, nullptr);
    spdlog::info("recovery: {} unfinished packets in memory", unfinished->size());
  }

  journal_->Start([this](std::span<const bus::PositionedEvent> durable) { OnDurable(durable); });
  writer_->Start();
  reader_->Start();
  sweeper_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "rp-sweeper");
    SweepLoop();
  });
  started_ = true;
  ready_.store(true, std::memory_order_release);
}

void RedPacketService::Stop() {
  if (!started_.exchange(false)) return;
  ready_ = false;
  StopSweeper();
  // The journal acknowledges what is queued; the writer then applies it before it joins.
  journal_->Stop();
  bool schedule;
  {
    std::lock_guard lock(apply_mutex_);
    schedule = ShouldScheduleApply(true);
  }
  if (schedule) writer_->Post([this](ledger::Ledger& ledger) { ApplyPending(ledger); });
  reader_->Stop();
  writer_->Stop();
  spdlog::info("service stopped: journal position {}, applied {}", journal_->durable_position(),
               applied_position_.load());
  // The journal has run every completion and the sweeper joined, so nothing calls into the
  // store any more; a Redis store must go now, while the server still owns the io_contexts its
  // connections were made on (destroying it after them would touch freed reactors).
  if (options_.store_factory) store_.reset();
}

void RedPacketService::StopSweeper() {
  {
    std::lock_guard lock(sweep_mutex_);
    sweep_stop_ = true;
  }
  sweep_wake_.notify_all();
  if (sweeper_.joinable()) sweeper_.join();
}

// Journal writer thread: the batch is durable. Its credits are pending until the ledger applies them.
void RedPacketService::OnDurable(std::span<const bus::PositionedEvent> events) {
  if (events.empty()) return;
  bool schedule = false;
  {
    std::lock_guard lock(apply_mutex_);
    for (const auto& positioned : events) {
      apply_buffer_.push_back(positioned.event);
      pending_cents_[positioned.event.user_id] += positioned.event.amount_cents;
    }
    apply_buffer_position_ = events.back().position;
    schedule = ShouldScheduleApply(false);
  }
  if (schedule) writer_->Post([this](ledger::Ledger& ledger) { ApplyPending(ledger); });
}

bool RedPacketService::ShouldScheduleApply(bool force) {
  if (apply_scheduled_ || apply_buffer_.empty()) return false;
  const auto now = std::chrono::steady_clock::now();
  if (!force && apply_buffer_.size() < options_.apply_batch_events && now - last_apply_ < options_.apply_interval) {
    return false;  // the sweeper thread's next tick schedules it
  }
  apply_scheduled_ = true;
  return true;
}

// Writer thread: applies everything buffered in as few transactions as possible.
void RedPacketService::ApplyPending(ledger::Ledger& ledger) {
  std::vector<domain::LedgerEvent> batch;
  std::uint64_t position;
  {
    std::lock_guard lock(apply_mutex_);
    batch.swap(apply_buffer_);
    position = apply_buffer_position_;
    apply_scheduled_ = false;
    last_apply_ = std::chrono::steady_clock::now();
  }
  for (std::size_t begin = 0; begin < batch.size(); begin += kApplyChunk) {
    const std::size_t end = std::min(batch.size(), begin + kApplyChunk);
    // Positions are dense and the buffer is in position order, so the chunk's last position is
    // the batch's last minus what follows it.
    const std::uint64_t chunk_position = position - (batch.size() - end);
    Status status =
        ledger.ApplyEvents(std::span(batch).subspan(begin, end - begin), {{0, chunk_position}});
    if (!status) {
      // Should never happen. The events are durable in the journal; a restart applies them.
      spdlog::critical("cannot apply journal events to the ledger: {}", status.error().message);
      std::abort();
    }
  }
  {
    std::lock_guard lock(apply_mutex_);
    for (const auto& event : batch) {
      auto it = pending_cents_.find(event.user_id);
      if (it != pending_cents_.end() && (it->second -= event.amount_cents) == 0) pending_cents_.erase(it);
      if (event.type == domain::LedgerEvent::Type::kRefund) ++refunded_;
    }
  }
  applied_position_.store(position, std::memory_order_release);
  journal_->ReleaseUpTo(position);
}

// The sweeper thread also ticks the applier, so a quiet journal is applied within apply_interval.
void RedPacketService::SweepLoop() {
  std::unique_lock lock(sweep_mutex_);
  auto next_sweep = std::chrono::steady_clock::now() + options_.sweep_interval;
  while (!sweep_stop_) {
    sweep_wake_.wait_for(lock, std::min<std::chrono::milliseconds>(options_.apply_interval, options_.sweep_interval));
    if (sweep_stop_) break;
    lock.unlock();
    bool schedule;
    {
      std::lock_guard apply_lock(apply_mutex_);
      schedule = ShouldScheduleApply(true);
    }
    if (schedule) writer_->Post([this](ledger::Ledger& ledger) { ApplyPending(ledger); });
    if (std::chrono::steady_clock::now() < next_sweep) {
      lock.lock();
      continue;
    }
    next_sweep = std::chrono::steady_clock::now() + options_.sweep_interval;
    store::SweepStats stats = store_->Sweep(domain::Clock::now(), applied_position_.load(),
                                            options_.finished_retention);
    if (stats.closed || stats.evicted) {
      spdlog::info("sweeper: {} packets expired, {} finished packets evicted", stats.closed,
                   stats.evicted);
    }
    lock.lock();
  }
}

void RedPacketService::CreateUser(std::string name, Callback<ledger::UserRecord> done) {
  writer_->Post([name = std::move(name), done = std::move(done)](ledger::Ledger& ledger) {
    done(ledger.CreateUser(name));
  });
}

void RedPacketService::Deposit(UserId user_id, Cents amount_cents, std::string request_id,
                               Callback<Cents> done) {
  writer_->Post([=, request_id = std::move(request_id), done = std::move(done)](ledger::Ledger& ledger) {
    done(ledger.Deposit(user_id, amount_cents, request_id));
  });
}

void RedPacketService::CreatePacket(domain::PacketSpec spec, std::string request_id,
                                    Callback<ledger::PacketRecord> done) {
  if (Status status = domain::ValidatePacketSpec(spec, options_.limits); !status) {
    return done(status.error());
  }
  writer_->Post([this, spec = std::move(spec), request_id = std::move(request_id),
                 done = std::move(done)](ledger::Ledger& ledger) {
    const auto shares = domain::SplitShares(spec, domain::ThreadCryptoRandom());
    const auto now = domain::Clock::now();
    auto created = ledger.CreatePacket(spec, shares, now, now + std::chrono::seconds(spec.expires_in_s),
                                       request_id);
    // Only an open packet enters memory: a repeated request_id may return a packet that has
    // since finished and been evicted, and loading it again would hand its shares out twice.
    if (created && created->status == domain::PacketStatus::kOpen) {
      if (created->shares.empty()) created->shares = shares;
      auto record = std::make_shared<ledger::PacketRecord>(std::move(created.value()));
      store_->Add(*record, [record, done = std::move(done)](Status added) {
        if (!added) return done(added.error());
        done(std::move(*record));
      });
      return;
    }
    done(std::move(created));
  });
}

void RedPacketService::Grab(PacketId packet_id, UserId user_id, GrabCallback done) {
  store_->Grab(packet_id, user_id, domain::Clock::now(),
               [this, packet_id, user_id, done = std::move(done)](store::GrabResult result) mutable {
                 if (result.code == ErrorCode::kNotFound && result.message.empty()) {
                   return GrabFromLedger(packet_id, user_id, std::move(done));
                 }
                 done(std::move(result));
               });
}

// The packet is not in memory: unknown, or finished and evicted (its events are all applied).
void RedPacketService::GrabFromLedger(PacketId packet_id, UserId user_id, GrabCallback done) {
  reader_->Post([packet_id, user_id, done = std::move(done)](ledger::Ledger& ledger) {
    store::GrabResult result;
    auto packet = ledger.GetPacket(packet_id);
    if (!packet) {
      result.code = packet.error().code;
      result.message = packet.error().message;
    } else if (!packet->has_value()) {
      result.code = ErrorCode::kNotFound;
      result.message = "no such packet";
    } else {
      const ledger::PacketRecord& record = **packet;
      result.code = ErrorCode::kGone;
      result.message = record.status == domain::PacketStatus::kExhausted ? "the packet is empty"
                                                                         : "the packet has expired";
      result.remaining_count = record.spec.count - static_cast<std::int64_t>(record.grabs.size());
      if (record.spec.receiver_id && *record.spec.receiver_id != user_id) {
        result.code = ErrorCode::kForbidden;
        result.message = "this packet is for another user";
      }
      for (const auto& grab : record.grabs) {
        if (grab.user_id == user_id) {
          result.code = ErrorCode::kConflict;
          result.message = "you already grabbed this packet";
          result.amount_cents = grab.amount_cents;
          result.seq = grab.seq;
        }
      }
    }
    done(std::move(result));
  });
}

void RedPacketService::GetPacket(PacketId packet_id, Callback<store::PacketSnapshot> done) {
  store_->Snapshot(packet_id, [this, packet_id, done = std::move(done)](std::optional<store::PacketSnapshot> held) mutable {
    if (held) return done(std::move(*held));
    GetPacketFromLedger(packet_id, std::move(done));
  });
}

// Not held by the store: finished and evicted, or unknown.
void RedPacketService::GetPacketFromLedger(PacketId packet_id, Callback<store::PacketSnapshot> done) {
  reader_->Post([packet_id, done = std::move(done)](ledger::Ledger& ledger) {
    auto packet = ledger.GetPacket(packet_id);
    if (!packet) return done(packet.error());
    if (!packet->has_value()) return done(MakeError(ErrorCode::kNotFound, "no such packet"));
    store::PacketSnapshot snapshot;
    snapshot.record = std::move(**packet);
    snapshot.record.shares.clear();
    Cents grabbed = 0;
    for (const auto& grab : snapshot.record.grabs) grabbed += grab.amount_cents;
    snapshot.remaining_count = snapshot.record.spec.count - static_cast<std::int64_t>(snapshot.record.grabs.size());
    snapshot.remaining_cents = snapshot.record.spec.total_cents - grabbed;
    done(std::move(snapshot));
  });
}

void RedPacketService::Balance(UserId user_id, Callback<BalanceView> done) {
  // On the writer: the ledger balance and the pending map change together there.
  writer_->Post([this, user_id, done = std::move(done)](ledger::Ledger& ledger) {
    auto balance = ledger.Balance(user_id);
    if (!balance) return done(balance.error());
    BalanceView view{user_id, *balance, 0};
    {
      std::lock_guard lock(apply_mutex_);
      if (auto it = pending_cents_.find(user_id); it != pending_cents_.end()) view.pending_cents = it->second;
    }
    done(view);
  });
}

void RedPacketService::History(UserId user_id, ledger::HistoryKind kind, int limit, std::string cursor,
                               Callback<ledger::HistoryPage> done) {
  reader_->Post([=, cursor = std::move(cursor), done = std::move(done)](ledger::Ledger& ledger) {
    done(ledger.History(user_id, kind, limit, cursor));
  });
}

void RedPacketService::CheckReady(std::function<void(Status)> done) {
  if (!ready()) return done(MakeError(ErrorCode::kUnavailable, "recovering"));
  store_->CheckHealth(std::move(done));
}

ServiceStats RedPacketService::stats() const {
  ServiceStats stats;
  if (!journal_) return stats;
  stats.journal_last_position = journal_->last_position();
  stats.journal_durable_position = journal_->durable_position();
  stats.journal_queued = journal_->queued_events();
  stats.journal_batches = journal_->batches_written();
  stats.applied_position = applied_position_.load();
  stats.ledger_queue_depth = writer_ ? writer_->queue_depth() : 0;
  stats.packets_in_memory = store_ ? store_->size() : 0;
  stats.packets_refunded = refunded_.load();
  return stats;
}

}  // namespace redpacket::service
