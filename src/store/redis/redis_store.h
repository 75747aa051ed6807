// The cluster hot path: PacketStore on a Redis Cluster, one Lua script per operation (lua/), all
// keys of a packet in the slot {rp:<id>}. Thread-safe; Add/Grab/Snapshot never block, Sweep blocks
// (call it from a non-I/O thread). Completions run on one of the store's I/O threads.
#pragma once

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "domain/clock.h"
#include "net/redis/cluster_client.h"
#include "net/redis/endpoint.h"
#include "store/outbox.h"
#include "store/restore.h"
#include "store/store.h"

namespace redpacket::store::redis {

// The lua/ directory of the source tree, compiled in (REDPACKET_LUA_DIR).
std::filesystem::path DefaultLuaDirectory();

struct RedisStoreOptions {
  // Timeouts, reconnect backoff... of every ClusterClient; `seeds` is set from the constructor's.
  net::redis::ClusterClientOptions client;
  std::filesystem::path lua_directory = DefaultLuaDirectory();  // create.lua, grab.lua, ...
  std::string key_prefix = "rp";  // keys {<prefix>:<id>}:meta...; tests use their own

  // A grab is answered only once `min_replicas` replicas have it (WAIT); after
  // `replication_timeout` without that, the grab answers kUnavailable "not replicated".
  int min_replicas = 1;
  std::chrono::milliseconds replication_timeout{100};
  std::chrono::milliseconds grab_timeout{1000};  // the whole Redis part of one grab
  // Keys live until expiry + this; afterwards the ledger answers for the packet.
  std::chrono::milliseconds key_grace{std::chrono::hours(24)};
  // Shares (or recovered grabs x4) per create/append script call: a 1,000,000-share packet is
  // loaded in 100 calls of about 70 KB each instead of one 7 MB command.
  std::size_t load_chunk = 10000;

  // Bloom filter of every packet id ever added (never shrinks): sized for this many ids at this
  // false-positive rate (bloom.h has the formulas and the resulting rates).
  std::uint64_t bloom_capacity = 10'000'000;
  double bloom_false_positive_rate = 0.001;

  // Per-I/O-thread metadata cache: entries live metadata_ttl +- metadata_ttl_jitter.
  std::chrono::milliseconds metadata_ttl{60000};
  std::chrono::milliseconds metadata_ttl_jitter{15000};
  std::size_t metadata_cache_entries = 100000;

  std::size_t sweep_batch = 1000;                     // expired ids read per ZRANGEBYSCORE
  std::chrono::milliseconds sweep_timeout{30000};     // Sweep returns after this at the latest
  std::chrono::milliseconds blocking_timeout{10000};  // Reserve, Claim, Holds

  // Told of every grab and refund event once it is recorded and replicated (the relay's fast
  // path, on an I/O thread). Empty: the events wait in the outbox for Claim.
  OutboxListener on_recorded;

  // "Now" of a snapshot's status and of the keys' lifetime (must outlive the store). Not the
  // outbox's age (Claim): its stream ids are Redis's own wall clock, compared with the system's.
  const domain::TimeSource* clock = &domain::SystemTime();
};

struct RedisStoreCounters {
  std::uint64_t grabs_ok = 0;
  std::uint64_t grabs_retried_ok = 0;  // a retry found its own earlier grab (same request token)
  std::uint64_t grabs_unavailable = 0;
  std::uint64_t bloom_rejections = 0;  // unknown ids answered without touching packet keys
  std::uint64_t metadata_cache_hits = 0;
  std::uint64_t refunds_recorded = 0;
  std::uint64_t outbox_removed = 0;  // entries removed after the bus acknowledged them
  std::uint64_t outbox_claimed = 0;  // entries handed to the relay's recovery
};

class RedisStoreImpl;

// Data layout (every key of packet <id> in slot {rp:<id>}; TTL = expiry + key_grace):
//   {rp:<id>}:meta    hash   sender total count kind greeting receiver created_ms expires_ms
//                            status(reserved|loading|open|exhausted|refunded) grabbed refund ...
//   {rp:<id>}:shares  list   the shares not handed out, in seq order (LPOP = next grab)
//   {rp:<id>}:grabs   hash   user -> "amount:seq:at_ms:request_token"
//   {rp:o<n>}:outbox  stream the events recorded by the grab and close scripts of every packet
//                            of that slot (n chosen so the tag lands in the slot: keys.h), until
//                            the relay has published them
//   {rp:bloom}        bitmap Bloom filter of packet ids     } single keys, so each lives on one
//   {rp:expiry}       zset   id scored by expires_ms        } master: every Add and cold lookup
//   {rp:lost}         set    ids found lost, for the loader }
//                                                             touches the bloom's node, every
//                                                             Sweep the expiry's. Both are one
//                                                             cheap command each.
// Threads: one ClusterClient (and metadata cache) per io_context; a call made on a thread that
// runs one of them uses that one (no locks, no hop); a call from any other thread is posted to
// the first. The io_contexts must run while the store is used; destroy the store after they
// stopped.
class RedisStore final : public PacketStore, public Outbox, public RestoreTarget {
 public:
  // Loads the scripts (throws std::runtime_error naming the missing file) and validates the
  // options (std::invalid_argument); no I/O yet.
  RedisStore(std::span<boost::asio::io_context* const> io_contexts,
             std::vector<net::redis::Endpoint> seeds, RedisStoreOptions options = {});
  ~RedisStore() override;
  RedisStore(const RedisStore&) = delete;
  RedisStore& operator=(const RedisStore&) = delete;

  // Optional start-up check, async: every client loads the slot map, and the Bloom filter's
  // size is recorded in Redis or compared with what is recorded (a mismatch is an error: the
  // bitmap would be read with the wrong hash functions). `done` runs on an I/O thread.
  void Connect(StatusCallback done);

  // Loads the shares (and the grabs of a recovered record) in chunks, marks the id in the Bloom
  // filter first and registers the expiry last; idempotent by packet id, and a retry resumes a
  // load cut short. Only an `open` record's shares are handed out: after the load the packet is
  // open, or exhausted when the record's grabs took every share. A reserved packet is loaded
  // over (the loader restores it).
  void Add(const domain::PacketRecord& packet, StatusCallback done) override;
  // Unknown to the Bloom filter: kNotFound "no such packet" (definitive, no other lookup).
  // Known but without keys (expired TTL, lost, or a false positive): GrabResult::NotHeld(),
  // the caller asks the ledger. Reserved or loading: kUnavailable. Redis unreachable,
  // timed out, or not replicated in time: kUnavailable. A 200 or 409 is answered only once a
  // replica holds the grab and its outbox entry (WAIT); the event is then handed to
  // options.on_recorded. A 503 "not replicated" leaves the entry to Claim.
  void Grab(PacketId packet_id, UserId user_id, TimePoint now, GrabCallback done) override;
  // nullopt: unknown to the Bloom filter, no keys, reserved/loading, or Redis unreachable.
  void Snapshot(PacketId packet_id, SnapshotCallback done) override;
  // One small script (count.lua): EXISTS meta + HLEN grabs. Redis unreachable: kUnavailable.
  void CountGrabs(PacketId packet_id, CountCallback done) override;
  // Blocking (up to sweep_timeout): closes every packet of {rp:expiry} whose expiry <= now; the
  // close records the refund in the outbox (handed to options.on_recorded once replicated).
  // A registered packet whose keys are missing stays registered and is reported in
  // SweepStats::lost (its refund waits for the loader to restore it). applied_position and
  // retention are not used (Redis drops finished packets by TTL). Returns {} at once when called
  // on an I/O thread.
  SweepStats Sweep(TimePoint now, std::uint64_t applied_position,
                   std::chrono::milliseconds retention) override;
  // Sweep for the holder of the sweeper lease (lease/lease.h) with its fencing token: every batch
  // first checks, in the slot of {rp:expiry}, that no higher token was seen ({rp:expiry}:fence)
  // and records this one. Refused: kConflict, and the sweep stopped at that batch boundary (a
  // stale sweeper may still finish the closes of the batch it had read: closes are idempotent
  // and record a refund only once, so no money moves twice).
  domain::Result<SweepStats> FencedSweep(TimePoint now, std::uint64_t fencing_token);
  // Packets registered for expiry and not yet closed, as of the last Sweep.
  std::size_t size() const override;

  // Non-blocking: SADD {rp:lost} (the loader takes it from there).
  void ReportLost(PacketId packet_id) override;
  // Restoring lost packets (store/restore.h); blocking.
  domain::Result<Reservation> Reserve(PacketId packet_id, TimePoint expires_at) override;
  domain::Result<std::vector<PacketId>> TakeLost(std::size_t limit) override;
  domain::Status Unregister(PacketId packet_id) override;

  // The outbox (store/outbox.h): one stream per slot. Remove is non-blocking (posted to an I/O
  // thread); Claim and Holds block (call them from a non-I/O thread).
  void Remove(Entries entries) override;
  domain::Result<Entries> Claim(std::chrono::milliseconds min_age, std::size_t limit) override;
  domain::Result<bool> Holds(PacketId packet_id) override;

  RedisStoreCounters counters() const;
  // PING the master of {rp:bloom} (every unknown-id check needs that node) from an I/O thread.
  void CheckHealth(StatusCallback done) override;

 private:
  std::shared_ptr<RedisStoreImpl> impl_;
};

}  // namespace redpacket::store::redis
