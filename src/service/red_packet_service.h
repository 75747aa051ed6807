// The service: every API operation, independent of HTTP and of the backends. app/ hands it its
// parts (ServiceParts): the ledger it writes to, the ledger it reads from, and the hot-path
// store (which sends decided grabs and refunds to the bus). Embedded: memory store + local
// journal + SQLite; cluster: Redis Cluster store + Kafka + MariaDB primary/replica. The service
// runs the sweeper (expiry) and, when the store does not keep packets itself, reloads the open
// packets from the ledger on start.
// Thread-safe. Calls never block; callbacks run on a service thread (callers re-post them).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <unordered_map>

#include "domain/clock.h"
#include "domain/packet.h"
#include "ledger/ledger.h"
#include "service/ledger_worker.h"
#include "service/pending_credits.h"
#include "service/write_batcher.h"
#include "store/store.h"

namespace redpacket::service {

using domain::Cents;
using domain::PacketId;
using domain::Result;
using domain::Status;
using domain::UserId;

struct ServiceOptions {
  domain::Limits limits;
  std::chrono::milliseconds sweep_interval{1000};
  // Finished packets stay in memory this long after the ledger has them (details stay hot).
  std::chrono::milliseconds finished_retention{60000};
  // Creates, deposits and new users committed together at most (group commit).
  std::size_t max_batch_writes = 1024;
};

struct ServiceStats {
  std::size_t ledger_queue_depth = 0;  // writes waiting for the next batch
  std::uint64_t write_batches = 0;     // ledger transactions of creates, deposits, new users
  std::uint64_t writes = 0;            // writes answered
  std::size_t packets_in_memory = 0;
  std::uint64_t packets_expired = 0;  // closed by this server's sweeper
};

struct ServiceParts {
  // Creates, deposits, and the reads that must see them (a grab of a packet the store does
  // not hold). Migrated by Start().
  std::unique_ptr<ledger::Ledger> writer;
  // Details, history, balance. May lag the writer (a replica).
  std::unique_ptr<ledger::Ledger> reader;
  // Makes the hot-path store during Start(). It may throw std::runtime_error (a startup
  // error, e.g. Redis unreachable).
  std::function<std::unique_ptr<store::PacketStore>()> store_factory;
  // The store keeps packets itself (Redis: across API-server restarts, shared by every server):
  // Start() does not reload the ledger's open packets into it.
  bool store_keeps_packets = false;
  // Embedded: the pending credits; null in cluster mode (pending_cents is then 0).
  PendingCredits* pending = nullptr;
  // The highest bus position the ledger has applied: the memory store evicts finished packets
  // only once their events are applied. Empty: never evicts on that ground (0).
  std::function<std::uint64_t()> applied_position;
  // Replaces the store's plain Sweep (cluster: only the holder of the sweeper lease sweeps,
  // fenced by its token). nullopt: this server did not sweep this time.
  std::function<std::optional<store::SweepStats>(domain::TimePoint now)> sweep;
  // Runs on the sweeper thread after each sweep this server made (cluster: the reconciler).
  std::function<void(store::PacketStore&)> after_sweep;
  // "Now" for expiry, creation and sweeps (must outlive the service). Null: the system clock.
  const domain::TimeSource* clock = nullptr;
  // For /readyz: each dependency beyond the store ("kafka", "mariadb_primary"...) and "ok" or
  // what is wrong. Must not block (cached by the caller's own health checks).
  std::function<std::map<std::string, std::string>()> dependency_checks;
};

struct BalanceView {
  UserId user_id = 0;
  Cents balance_cents = 0;
  Cents pending_cents = 0;  // acknowledged grabs and refunds not yet applied to the ledger
};

// Packets this server recently found lost (the store lacks them, the ledger has them
// unfinished): their grabs answer 503 at once for a moment instead of reading the ledger each
// time (a stampede on a lost hot packet would otherwise land on the replica). Thread-safe.
class LostPackets {
 public:
  bool Contains(PacketId packet_id, std::chrono::steady_clock::time_point now);
  void Insert(PacketId packet_id, std::chrono::steady_clock::time_point now);

 private:
  static constexpr std::chrono::milliseconds kRemembered{1000};
  static constexpr std::size_t kMaxEntries = 10000;
  std::mutex mutex_;
  std::unordered_map<PacketId, std::chrono::steady_clock::time_point> until_;
};

class RedPacketService {
 public:
  template <class T>
  using Callback = std::function<void(Result<T>)>;
  using GrabCallback = std::function<void(store::GrabResult)>;

  RedPacketService(ServiceOptions options, ServiceParts parts);
  ~RedPacketService();

  // Blocking: migrates the writer's ledger, makes the store, reloads the open packets into it
  // (unless the store keeps them), then starts the ledger and sweeper threads. Throws
  // std::runtime_error with a clear message on failure (startup error). Whatever must be
  // recovered into the ledger first (the embedded journal) is recovered before this.
  void Start();
  // Blocking: the sweeper and ledger threads finish their queues and join; the store is
  // destroyed. Call after the HTTP server stopped taking requests, after the bus delivered
  // every completion, and (Redis store) while its io_contexts still exist but no longer run.
  void Stop();
  // Blocking: ends the sweeper thread. Cluster mode calls it before the server stops its
  // io_contexts: a sweep of the Redis store waits for replies that only those loops deliver.
  // Idempotent; Stop() calls it too.
  void StopSweeper();
  // Blocking: wakes the sweeper and returns once it has swept (with the parts' clock's "now").
  // For tests that move a manual clock past an expiry; the sweeper must be running.
  void SweepNow();
  bool ready() const { return ready_.load(std::memory_order_acquire); }
  // For /readyz: every check ("store" and the dependency checks) with "ok" or what is wrong.
  // Ready when every check is "ok" except "mariadb_replica" (reads fall back to the primary).
  using Checks = std::map<std::string, std::string>;
  void CheckReady(std::function<void(Checks)> done);

  const domain::Limits& limits() const { return options_.limits; }

  void CreateUser(std::string name, Callback<ledger::UserRecord> done);
  void Deposit(UserId user_id, Cents amount_cents, std::string request_id, Callback<Cents> done);
  // Validates, splits (on the ledger thread: a 1,000,000-share split must not stall I/O), debits
  // and stores, then makes the packet grabbable.
  void CreatePacket(domain::PacketSpec spec, std::string request_id,
                    Callback<ledger::PacketRecord> done);
  void Grab(PacketId packet_id, UserId user_id, GrabCallback done);
  void GetPacket(PacketId packet_id, Callback<store::PacketSnapshot> done);
  void Balance(UserId user_id, Callback<BalanceView> done);
  void History(UserId user_id, ledger::HistoryKind kind, int limit, std::string cursor,
               Callback<ledger::HistoryPage> done);

  ServiceStats stats() const;

 private:
  void SweepLoop();
  void GrabFromLedger(PacketId packet_id, UserId user_id, GrabCallback done);
  void GetPacketFromLedger(PacketId packet_id, Callback<store::PacketSnapshot> done);

  ServiceOptions options_;
  ServiceParts parts_;
  const domain::TimeSource& clock_;
  std::unique_ptr<store::PacketStore> store_;
  std::unique_ptr<WriteBatcher> writer_;  // creates, deposits, new users (group commit)
  std::unique_ptr<LedgerWorker> reader_;  // details, history, balance
  std::atomic<std::uint64_t> expired_{0};
  LostPackets lost_;

  std::atomic<bool> ready_{false};
  std::atomic<bool> started_{false};
  std::mutex sweep_mutex_;
  std::condition_variable sweep_wake_;
  bool sweep_stop_ = false;
  bool sweep_requested_ = false;  // SweepNow: sweep without waiting for the interval
  bool sweeping_ = false;         // the sweeper is between its wake-up and ++sweeps_done_
  std::uint64_t sweeps_done_ = 0;
  std::condition_variable sweep_done_;
  std::thread sweeper_;
};

}  // namespace redpacket::service
