// The service: every API operation, independent of HTTP and of the backends, and nothing else (the
// sweeper, the relay, the loader run as components of their own, app/serve_command.cc). app/
// hands it its dependencies: the ledger it writes to, the ledger it reads from (may lag), the
// hot-path store, the clock and the randomness of the splits. Embedded: memory store + local
// journal + SQLite; cluster: Redis store + outbox relay + MariaDB primary/replica.
// Thread-safe. Calls never block; callbacks run on a service thread (callers re-post them).
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "domain/clock.h"
#include "domain/packet.h"
#include "domain/random.h"
#include "ledger/ledger.h"
#include "service/pending_credits.h"
#include "service/read_queue.h"
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
  // Creates, deposits and new users committed together at most (group commit).
  std::size_t max_batch_writes = 1024;
};

struct ServiceStats {
  std::size_t ledger_queue_depth = 0;  // writes waiting for the next batch
  std::uint64_t write_batches = 0;     // ledger transactions of creates, deposits, new users
  std::uint64_t writes = 0;            // writes answered
  std::size_t packets_in_memory = 0;
};

// Where the store's packets come from.
enum class StoreKind {
  // In-process (embedded): Start() loads the ledger's unfinished packets into it.
  kRebuiltFromLedger,
  // Keeps packets itself, shared by every server (cluster): a created packet's load intent is
  // completed in the ledger once the store has it.
  kKeepsPackets,
};

// For /readyz: each dependency beyond the store ("kafka", "journal"...) and "ok" or what is
// wrong. Implemented by each mode's backend; must not block (cached by its own health checks).
class DependencyChecks {
 public:
  virtual ~DependencyChecks() = default;
  virtual std::map<std::string, std::string> Checks() const = 0;
};

struct ServiceDeps {
  using OpenLedger = std::function<std::unique_ptr<ledger::Ledger>()>;
  // Each called once by Start() (the backend has started by then; a throw is a startup error).
  // The writer: creates, deposits, and the reads that must see them; migrated by Start().
  OpenLedger open_writer;
  // The reader: details, history, balance. May lag the writer (a replica).
  OpenLedger open_reader;
  store::PacketStore* store = nullptr;  // must outlive the service
  StoreKind store_kind = StoreKind::kRebuiltFromLedger;
  // Embedded: the credits the journal holds and the ledger has not applied; null in cluster
  // mode (pending_cents is then 0).
  PendingCredits* pending = nullptr;
  // "Now" of creation and of the grab's expiry check (must outlive the service).
  const domain::TimeSource* clock = &domain::SystemTime();
  // The shares' randomness, used on the writer's thread only (must outlive the service; tests
  // hand in a SeededRandom). Null: a cryptographic generator of the service's own.
  domain::RandomSource* random = nullptr;
  const DependencyChecks* checks = nullptr;  // may be null
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

  RedPacketService(ServiceOptions options, ServiceDeps deps);
  ~RedPacketService();

  // Blocking: opens the ledgers, migrates the writer's, loads the open packets into the store
  // (unless it keeps them), then starts the ledger threads. Throws std::runtime_error with a clear
  // message on failure (startup error). Whatever must be recovered into the ledger first (the
  // embedded journal) is recovered before this.
  void Start();
  // Blocking: the ledger threads finish their queues and join. Call after the HTTP server
  // stopped taking requests.
  void Stop();
  bool ready() const { return ready_.load(std::memory_order_acquire); }
  // For /readyz: every check ("store" and the dependency checks) with "ok" or what is wrong.
  // Ready when every check is "ok" except "mariadb_replica" and "kafka" (http/api.cc).
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
  void GrabFromLedger(PacketId packet_id, UserId user_id, GrabCallback done);
  void GetPacketFromLedger(PacketId packet_id, Callback<store::PacketSnapshot> done);

  ServiceOptions options_;
  ServiceDeps deps_;
  const domain::TimeSource& clock_;
  std::unique_ptr<domain::RandomSource> own_random_;  // when deps_.random is null
  domain::RandomSource& random_;
  store::PacketStore& store_;
  std::unique_ptr<WriteBatcher> writer_;  // creates, deposits, new users (group commit)
  std::unique_ptr<ReadQueue> reader_;     // details, history, balance
  LostPackets lost_;

  std::atomic<bool> ready_{false};
  std::atomic<bool> started_{false};
};

}  // namespace redpacket::service
