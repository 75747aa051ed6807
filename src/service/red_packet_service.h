// The service: every API operation, independent of HTTP. Embedded mode wiring: packets in the
// memory store, grabs and refunds durable in the local journal, the ledger (SQLite) applied from
// the journal exactly once on its own thread, a sweeper thread for expiry. Cluster mode swaps the
// store for one the caller makes (ServiceOptions::store_factory: the Redis Cluster store); the
// journal, ledger and sweeper stay.
// Thread-safe. Calls never block; callbacks run on a service thread (callers re-post them).
#pragma once

#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <condition_variable>

#include "bus/local/journal.h"
#include "bus/local/journal_sink.h"
#include "domain/packet.h"
#include "ledger/ledger.h"
#include "service/ledger_worker.h"
#include "store/store.h"

namespace redpacket::service {

using domain::Cents;
using domain::PacketId;
using domain::Result;
using domain::Status;
using domain::UserId;

struct ServiceOptions {
  std::filesystem::path data_dir = "./data";
  domain::Limits limits;
  std::chrono::milliseconds sweep_interval{1000};
  // Finished packets stay in memory this long after the ledger has them (details stay hot).
  std::chrono::milliseconds finished_retention{60000};
  std::size_t journal_segment_bytes = 64u << 20;
  std::chrono::microseconds journal_gather{100};  // see Journal::Options::gather_window
  // The ledger applies the journal in batches at least this far apart (or sooner once a batch
  // holds apply_batch_events): fewer, larger SQLite transactions leave the disk to the journal's
  // fsyncs, which are what a grab's reply waits for.
  std::chrono::milliseconds apply_interval{20};
  std::size_t apply_batch_events = 8192;
  // Makes the hot-path store on the grab/refund sink during Start(); empty: the memory store
  // (embedded). A store made here holds the packets itself (Redis), so Start() does not load
  // the ledger's unfinished packets into it, and Stop() destroys it. It may throw
  // std::runtime_error (a startup error, e.g. Redis unreachable).
  std::function<std::unique_ptr<store::PacketStore>(bus::EventSink&)> store_factory;
  // The journal's directory is data_dir/journal, or data_dir/journal-<name> with its own applied
  // position in the ledger: cluster-mode servers sharing one data_dir (one SQLite ledger) must
  // each name theirs, since a journal has exactly one writer.
  std::string journal_name;
};

struct BalanceView {
  UserId user_id = 0;
  Cents balance_cents = 0;
  Cents pending_cents = 0;  // acknowledged grabs and refunds not yet applied to the ledger
};

struct ServiceStats {
  std::uint64_t journal_last_position = 0;
  std::uint64_t journal_durable_position = 0;
  std::uint64_t applied_position = 0;
  std::size_t journal_queued = 0;
  std::uint64_t journal_batches = 0;
  std::size_t ledger_queue_depth = 0;
  std::size_t packets_in_memory = 0;
  std::uint64_t packets_refunded = 0;
};

class RedPacketService {
 public:
  template <class T>
  using Callback = std::function<void(Result<T>)>;
  using GrabCallback = std::function<void(store::GrabResult)>;

  explicit RedPacketService(ServiceOptions options);
  ~RedPacketService();

  // Blocking: migrates the ledger, applies what the journal holds beyond it, rebuilds the open
  // packets in memory, then starts the journal, ledger and sweeper threads. Throws
  // std::runtime_error with a clear message on failure (startup error).
  void Start();
  // Blocking: the journal flushes and acknowledges what is queued, the ledger applies it, threads
  // join; a store made by store_factory is destroyed. Call after the HTTP server stopped taking
  // requests (and, for the Redis store, after its io_contexts stopped).
  void Stop();
  // Blocking: ends the sweeper thread (expiry and the applier's ticks; Stop() applies what is
  // left). Cluster mode calls it before the server stops its io_contexts: a sweep of the Redis
  // store waits for replies that only those loops deliver. Idempotent; Stop() calls it too.
  void StopSweeper();
  bool ready() const { return ready_.load(std::memory_order_acquire); }
  // Ready and the store reachable (a Redis Cluster in cluster mode); for /readyz.
  void CheckReady(std::function<void(Status)> done);

  const domain::Limits& limits() const { return options_.limits; }

  void CreateUser(std::string name, Callback<ledger::UserRecord> done);
  void Deposit(UserId user_id, Cents amount_cents, std::string request_id, Callback<Cents> done);
  // Validates, splits (on the ledger thread: a 1,000,000-share split must not stall I/O), debits
  // and stores, then makes the packet grabbable.
  void CreatePacket(domain::PacketSpec spec, std::string request_id, Callback<ledger::PacketRecord> done);
  void Grab(PacketId packet_id, UserId user_id, GrabCallback done);
  void GetPacket(PacketId packet_id, Callback<store::PacketSnapshot> done);
  void Balance(UserId user_id, Callback<BalanceView> done);
  void History(UserId user_id, ledger::HistoryKind kind, int limit, std::string cursor,
               Callback<ledger::HistoryPage> done);

  ServiceStats stats() const;

 private:
  void OnDurable(std::span<const bus::PositionedEvent> events);
  void ApplyPending(ledger::Ledger& ledger);
  void SweepLoop();
  // Posts an apply task unless one is queued. Called with apply_mutex_ held; returns whether the
  // caller must post it (after unlocking).
  bool ShouldScheduleApply(bool force);
  void GrabFromLedger(PacketId packet_id, UserId user_id, GrabCallback done);
  void GetPacketFromLedger(PacketId packet_id, Callback<store::PacketSnapshot> done);

  ServiceOptions options_;
  std::unique_ptr<bus::Journal> journal_;
  std::unique_ptr<bus::JournalSink> sink_;
  std::unique_ptr<store::PacketStore> store_;
  std::unique_ptr<LedgerWorker> writer_;  // creates, deposits, balances, applying the journal
  std::unique_ptr<LedgerWorker> reader_;  // details, history (a second connection: WAL readers)

  // Durable, not yet applied: the batch waiting for the writer, and pending credit per user.
  std::mutex apply_mutex_;
  std::vector<domain::LedgerEvent> apply_buffer_;
  std::uint64_t apply_buffer_position_ = 0;
  bool apply_scheduled_ = false;
  std::chrono::steady_clock::time_point last_apply_{};
  std::unordered_map<UserId, Cents> pending_cents_;
  std::atomic<std::uint64_t> applied_position_{0};
  std::atomic<std::uint64_t> refunded_{0};

  std::atomic<bool> ready_{false};
  std::atomic<bool> started_{false};
  std::mutex sweep_mutex_;
  std::condition_variable sweep_wake_;
  bool sweep_stop_ = false;
  std::thread sweeper_;
};

}  // namespace redpacket::service
