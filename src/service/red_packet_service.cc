// RedPacketService: API operations over the dependencies app/ hands in.
#include "service/red_packet_service.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <stdexcept>

#include "domain/grab_rules.h"

namespace redpacket::service {
namespace {

using domain::ErrorCode;
using domain::MakeError;

store::GrabResult BeingRestored() {
  return store::GrabResult::Failed(ErrorCode::kUnavailable, "the packet is being restored; retry");
}

}  // namespace

bool LostPackets::Contains(PacketId packet_id, std::chrono::steady_clock::time_point now) {
  std::lock_guard lock(mutex_);
  auto it = until_.find(packet_id);
  if (it == until_.end()) return false;
  if (it->second > now) return true;
  until_.erase(it);
  return false;
}

void LostPackets::Insert(PacketId packet_id, std::chrono::steady_clock::time_point now) {
  std::lock_guard lock(mutex_);
  if (until_.size() >= kMaxEntries) {
    std::erase_if(until_, [now](const auto& entry) { return entry.second <= now; });
    if (until_.size() >= kMaxEntries) until_.clear();
  }
  until_[packet_id] = now + kRemembered;
}

RedPacketService::RedPacketService(ServiceOptions options, ServiceDeps deps)
    : options_(std::move(options)),
      deps_(std::move(deps)),
      clock_(deps_.clock != nullptr ? *deps_.clock : domain::SystemTime()),
      own_random_(deps_.random == nullptr ? std::make_unique<domain::CryptoRandom>() : nullptr),
      random_(deps_.random != nullptr ? *deps_.random : *own_random_),
      store_(*deps_.store) {
  if (!deps_.open_writer || !deps_.open_reader || deps_.store == nullptr) {
    throw std::logic_error("the service needs a writer, a reader and a store");
  }
}

RedPacketService::~RedPacketService() { Stop(); }

void RedPacketService::Start() {
  std::unique_ptr<ledger::Ledger> writer = deps_.open_writer();
  std::unique_ptr<ledger::Ledger> reader = deps_.open_reader();
  ledger::Ledger& ledger = *writer;
  if (Status status = ledger.Migrate(); !status) {
    throw std::runtime_error("cannot migrate the ledger: " + status.error().message);
  }
  if (deps_.store_kind == StoreKind::kRebuiltFromLedger) {
    auto unfinished = ledger.LoadUnfinishedPackets();
    if (!unfinished) throw std::runtime_error("cannot load packets: " + unfinished.error().message);
    for (const auto& packet : *unfinished) store_.Add(packet, nullptr);
    spdlog::info("recovery: {} unfinished packets in memory", unfinished->size());
  }
  writer_ = std::make_unique<WriteBatcher>("rp-ledger-write", std::move(writer),
                                           options_.max_batch_writes);
  reader_ = std::make_unique<ReadQueue>("rp-ledger-read", std::move(reader));
  writer_->Start();
  reader_->Start();
  started_ = true;
  ready_.store(true, std::memory_order_release);
}

void RedPacketService::Stop() {
  if (!started_.exchange(false)) return;
  ready_ = false;
  reader_->Stop();
  writer_->Stop();
  spdlog::info("service stopped");
}

void RedPacketService::CreateUser(std::string name, Callback<ledger::UserRecord> done) {
  writer_->Post<ledger::CreateUserWrite>({std::move(name)}, nullptr, std::move(done));
}

void RedPacketService::Deposit(UserId user_id, Cents amount_cents, std::string request_id,
                               Callback<Cents> done) {
  writer_->Post<ledger::DepositWrite>({user_id, amount_cents, std::move(request_id)}, nullptr,
                                      std::move(done));
}

void RedPacketService::CreatePacket(domain::PacketSpec spec, std::string request_id,
                                    Callback<ledger::PacketRecord> done) {
  if (Status status = domain::ValidatePacketSpec(spec, options_.limits); !status) {
    return done(status.error());
  }
  // The split runs on the writer's thread (a 1,000,000-share split must not stall an I/O
  // thread); the completion keeps the shares for a ledger that answers without them.
  auto shares = std::make_shared<std::vector<Cents>>();
  auto prepare = [this, shares](ledger::CreatePacketWrite& create) {
    create.shares = domain::SplitShares(create.spec, random_);
    *shares = create.shares;
    create.created_at = clock_.Now();
    create.expires_at = create.created_at + std::chrono::seconds(create.spec.expires_in_s);
  };
  ledger::CreatePacketWrite write;
  write.spec = std::move(spec);
  write.request_id = std::move(request_id);
  writer_->Post<ledger::CreatePacketWrite>(
      std::move(write), std::move(prepare),
      [this, shares, done = std::move(done)](Result<ledger::PacketRecord> created) {
        // Only a packet created now enters the store: a repeated request_id returns the
        // first packet, which may have been grabbed, finished or lost since, and
        // loading it again could hand a share out twice. (Embedded: the first create
        // loaded it, or the restart did. Cluster: the creator did, or its load intent
        // is pending and a loader completes it.)
        if (created && created->status == domain::PacketStatus::kOpen && !created->repeated) {
          if (created->shares.empty()) created->shares = *shares;
          auto record = std::make_shared<ledger::PacketRecord>(std::move(created.value()));
          store_.Add(*record, [this, record, done](Status added) {
            if (!added) return done(added.error());
            if (deps_.store_kind == StoreKind::kKeepsPackets) {
              // Loaded: the ledger's load intent is done (nothing waits for this).
              writer_->Post<ledger::CompleteLoadWrite>({record->packet_id}, nullptr,
                                                       [](const Result<bool>&) {});
            }
            done(std::move(*record));
          });
          return;
        }
        done(std::move(created));
      });
}

void RedPacketService::Grab(PacketId packet_id, UserId user_id, GrabCallback done) {
  if (lost_.Contains(packet_id, std::chrono::steady_clock::now())) {
    return done(BeingRestored());
  }
  store_.Grab(packet_id, user_id, clock_.Now(),
              [this, packet_id, user_id, done = std::move(done)](store::GrabResult result) mutable {
                if (result.not_held) {
                  return GrabFromLedger(packet_id, user_id, std::move(done));
                }
                done(std::move(result));
              });
}

// The packet is not in memory: unknown, or finished and evicted (its events are all applied).
void RedPacketService::GrabFromLedger(PacketId packet_id, UserId user_id, GrabCallback done) {
  reader_->Post([this, packet_id, user_id, done = std::move(done)](ledger::Ledger& ledger) {
    store::GrabResult result;
    auto packet = ledger.GetPacket(packet_id);
    if (!packet) {
      result = store::GrabResult::Failed(packet.error());
    } else if (!packet->has_value()) {
      result = store::GrabResult::Failed(ErrorCode::kNotFound, "no such packet");
    } else if ((*packet)->status == domain::PacketStatus::kOpen ||
               (*packet)->status == domain::PacketStatus::kExpired) {
      // Unfinished, yet the store does not hold it: its keys were lost (cluster). Never decided
      // from here: the ledger may lack grabs still on their way, and offering their shares
      // again would pay a share twice. The loader restores it once that is safe; until then
      // the grab is retryable.
      lost_.Insert(packet_id, std::chrono::steady_clock::now());
      store_.ReportLost(packet_id);
      result = BeingRestored();
    } else {
      // Finished and evicted (the store drops only finished packets): never a kTake, but the
      // same rules decide which refusal.
      const ledger::PacketRecord& record = **packet;
      const domain::Grab* first = nullptr;
      for (const auto& grab : record.grabs) {
        if (grab.user_id == user_id) first = &grab;
      }
      const auto taken = static_cast<std::int64_t>(record.grabs.size());
      domain::GrabDecision decision =
          domain::DecideGrab({record.spec.receiver_id, first != nullptr, record.status,
                              record.expires_at, taken, record.spec.count},
                             user_id, clock_.Now());
      if (decision == domain::GrabDecision::kTake) decision = domain::GrabDecision::kEmpty;
      result = store::GrabResult::Refused(decision);
      result.remaining_count = record.spec.count - taken;
      if (first != nullptr) {
        result.amount_cents = first->amount_cents;
        result.seq = first->seq;
      }
    }
    done(std::move(result));
  });
}

void RedPacketService::GetPacket(PacketId packet_id, Callback<store::PacketSnapshot> done) {
  store_.Snapshot(packet_id, [this, packet_id, done = std::move(done)](
                                 std::optional<store::PacketSnapshot> held) mutable {
    if (held) return done(std::move(*held));
    GetPacketFromLedger(packet_id, std::move(done));
  });
}

// Not held by the store: finished and evicted, or unknown.
void RedPacketService::GetPacketFromLedger(PacketId packet_id,
                                           Callback<store::PacketSnapshot> done) {
  reader_->Post([packet_id, done = std::move(done)](ledger::Ledger& ledger) {
    auto packet = ledger.GetPacket(packet_id);
    if (!packet) return done(packet.error());
    if (!packet->has_value()) return done(MakeError(ErrorCode::kNotFound, "no such packet"));
    store::PacketSnapshot snapshot;
    snapshot.record = std::move(**packet);
    snapshot.record.shares.clear();
    Cents grabbed = 0;
    for (const auto& grab : snapshot.record.grabs) grabbed += grab.amount_cents;
    snapshot.remaining_count =
        snapshot.record.spec.count - static_cast<std::int64_t>(snapshot.record.grabs.size());
    snapshot.remaining_cents = snapshot.record.spec.total_cents - grabbed;
    done(std::move(snapshot));
  });
}

void RedPacketService::Balance(UserId user_id, Callback<BalanceView> done) {
  reader_->Post([this, user_id, done = std::move(done)](ledger::Ledger& ledger) {
    // The balance and the ledger's applied position come from one snapshot, and the pending
    // credits are those beyond that position: no lock is shared with the applier, so a read
    // never waits for its transaction, and each event counts once, in the balance or in pending.
    constexpr int kAttempts = 8;
    for (int attempt = 0; attempt < kAttempts; ++attempt) {
      auto snapshot = ledger.BalanceWithOffsets(user_id);
      if (!snapshot) return done(snapshot.error());
      if (!deps_.pending) return done(BalanceView{user_id, snapshot->balance_cents, 0});
      const auto& offsets = snapshot->applied_offsets;
      const std::uint64_t applied = offsets.contains(0) ? offsets.at(0) : 0;
      if (auto pending = deps_.pending->Beyond(user_id, applied)) {
        return done(BalanceView{user_id, snapshot->balance_cents, *pending});
      }
      // The applier committed twice while this read ran: a newer snapshot answers.
    }
    done(MakeError(ErrorCode::kUnavailable, "the balance is being updated; retry"));
  });
}

void RedPacketService::History(UserId user_id, ledger::HistoryKind kind, int limit,
                               std::string cursor, Callback<ledger::HistoryPage> done) {
  reader_->Post([=, cursor = std::move(cursor), done = std::move(done)](ledger::Ledger& ledger) {
    done(ledger.History(user_id, kind, limit, cursor));
  });
}

void RedPacketService::CheckReady(std::function<void(Checks)> done) {
  Checks checks = deps_.checks != nullptr ? deps_.checks->Checks() : Checks{};
  if (!ready()) {
    checks["store"] = "recovering";
    return done(std::move(checks));
  }
  store_.CheckHealth([checks = std::move(checks), done = std::move(done)](Status status) mutable {
    checks["store"] = status ? std::string("ok") : status.error().message;
    done(std::move(checks));
  });
}

ServiceStats RedPacketService::stats() const {
  ServiceStats stats;
  stats.ledger_queue_depth = writer_ ? writer_->queue_depth() : 0;
  if (writer_) {
    const WriteBatcher::Stats written = writer_->stats();
    stats.write_batches = written.batches;
    stats.writes = written.writes;
  }
  stats.packets_in_memory = store_.size();
  return stats;
}

}  // namespace redpacket::service
