// The inside of RedisStore (redis_store.h), shared by its files: redis_store.cc (dispatch,
// connect, Bloom filter, health), redis_load.cc (Add, Reserve), redis_grab.cc (Grab, Snapshot,
// CountGrabs), redis_sweep.cc (expiry), redis_outbox.cc (the outbox's Remove, Claim, Holds).
// Not a public header.
#pragma once

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <chrono>
#include <future>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "domain/random.h"
#include "net/redis/cluster_client.h"
#include "net/redis/script.h"
#include "store/redis/bloom.h"
#include "store/redis/keys.h"
#include "store/redis/meta_cache.h"
#include "store/redis/redis_store.h"
#include "store/redis/script_replies.h"

namespace redpacket::store::redis {

// Keeps the strings of one command's arguments alive while their views are handed out.
struct Arguments {
  std::vector<std::string> values;
  std::vector<std::string_view> Views() const { return {values.begin(), values.end()}; }
};

// Errors at the Redis edge: what could succeed later is 503, a broken script or reply is 500.
GrabResult FromRedisError(const net::redis::Error& error);
domain::Status StatusFromRedisError(const net::redis::Error& error);

struct IoSlot {
  IoSlot(boost::asio::io_context& context, const net::redis::ClusterClientOptions& client_options,
         const RedisStoreOptions& options)
      : io(&context),
        client(std::make_unique<net::redis::ClusterClient>(context, client_options)),
        cache(options.metadata_ttl, options.metadata_ttl_jitter, options.metadata_cache_entries) {}

  boost::asio::io_context* io;
  std::unique_ptr<net::redis::ClusterClient> client;
  MetaCache cache;  // this thread's only: no lock
  // Request tokens (a retry's identity: unique, their value decides nothing) and cache TTL
  // jitter: not injected, nothing observable depends on what it draws.
  domain::CryptoRandom random;
};

class RedisStoreImpl : public std::enable_shared_from_this<RedisStoreImpl> {
 public:
  RedisStoreImpl(std::span<boost::asio::io_context* const> io_contexts,
                 std::vector<net::redis::Endpoint> seeds, RedisStoreOptions options);

  // Called with the io_contexts stopped: outstanding callbacks run here with kStopped.
  void Stop();

  // --- dispatch (redis_store.cc) ---
  IoSlot* CurrentSlot();
  // Runs `work(slot)` on this thread when it is one of the store's I/O threads, else on the first.
  template <class Work>
  void OnIoThread(Work work) {
    if (IoSlot* slot = CurrentSlot()) {
      work(*slot);
      return;
    }
    IoSlot& first = *slots_.front();
    boost::asio::post(*first.io, [self = shared_from_this(), &first,
                                  work = std::move(work)]() mutable { work(first); });
  }
  // Posts `done` to the slot's thread.
  template <class Done>
  void RunOn(IoSlot& slot, Done done) {
    boost::asio::post(*slot.io,
                      [self = shared_from_this(), done = std::move(done)]() mutable { done(); });
  }
  // From a non-I/O thread: runs `start(slot, finish)` on the first I/O thread and waits up to
  // options.blocking_timeout for `finish(value)`. kUnavailable on the timeout or on an I/O
  // thread (it would wait for itself).
  template <class T, class Start>
  domain::Result<T> Blocking(const char* what, Start start);
  // A script, then WAIT for options.min_replicas (none when 0).
  void EvalDurable(IoSlot& slot, const net::redis::Script& script,
                   std::span<const std::string_view> keys, std::span<const std::string_view> args,
                   std::chrono::milliseconds timeout, net::redis::Callback done);
  // Hands a recorded, replicated entry to options.on_recorded.
  void Recorded(OutboxEntry entry);

  // --- connect, Bloom filter, health (redis_store.cc) ---
  void Connect(PacketStore::StatusCallback done);
  void CheckBloomParameters(IoSlot& slot, PacketStore::StatusCallback done);
  void CheckHealth(PacketStore::StatusCallback done);
  // `done(maybe_present)`. On a Redis error the filter fails open: the packet keys answer.
  void CheckBloom(IoSlot& slot, PacketId packet_id, std::function<void(bool)> done);

  // --- loading (redis_load.cc) ---
  struct AddJob;
  void Add(const domain::PacketRecord& packet, PacketStore::StatusCallback done);
  void AddBloomBits(IoSlot& slot, const std::shared_ptr<AddJob>& job);
  void CreatePacketKeys(IoSlot& slot, const std::shared_ptr<AddJob>& job);
  void AppendShares(const std::shared_ptr<AddJob>& job, std::int64_t offset, Arguments* args);
  void RunLoadScript(IoSlot& slot, const std::shared_ptr<AddJob>& job,
                     const net::redis::Script& script, const Arguments& args);
  void ContinueLoad(IoSlot& slot, const std::shared_ptr<AddJob>& job, const LoadReply& state);
  void RegisterExpiry(IoSlot& slot, const std::shared_ptr<AddJob>& job, const std::string& status);
  domain::Result<Reservation> Reserve(PacketId packet_id, TimePoint expires_at);
  void ReportLost(PacketId packet_id);
  domain::Result<std::vector<PacketId>> TakeLost(std::size_t limit);
  domain::Status Unregister(PacketId packet_id);
  std::int64_t KeysExpireAtMs(TimePoint expires_at) const;

  // --- grabs and reads (redis_grab.cc) ---
  void Grab(PacketId packet_id, UserId user_id, TimePoint now, PacketStore::GrabCallback done);
  void RunGrab(IoSlot& slot, PacketId packet_id, UserId user_id, TimePoint now, bool want_meta,
               PacketStore::GrabCallback done);
  void OnGrabReply(IoSlot& slot, PacketId packet_id, UserId user_id, net::redis::Result result,
                   PacketStore::GrabCallback done);
  void Snapshot(PacketId packet_id, PacketStore::SnapshotCallback done);
  void RunSnapshot(IoSlot& slot, PacketId packet_id, PacketStore::SnapshotCallback done);
  void CountGrabs(PacketId packet_id, PacketStore::CountCallback done);

  // --- expiry (redis_sweep.cc) ---
  struct SweepRun;
  domain::Result<SweepStats> FencedSweep(TimePoint now, std::uint64_t fencing_token);
  SweepStats Sweep(TimePoint now, std::shared_ptr<SweepRun> run);
  SweepStats Sweep(TimePoint now);
  void SweepBatch(IoSlot& slot, const std::shared_ptr<SweepRun>& run);
  void ClosePacket(IoSlot& slot, const std::shared_ptr<SweepRun>& run, PacketId packet_id);
  void Unregister(IoSlot& slot, const std::shared_ptr<SweepRun>& run, PacketId packet_id);
  void SettleOne(IoSlot& slot, const std::shared_ptr<SweepRun>& run, bool removed);
  void FinishSweep(IoSlot& slot, const std::shared_ptr<SweepRun>& run);
  std::size_t size() const { return registered_.load(std::memory_order_relaxed); }

  // --- the outbox (redis_outbox.cc) ---
  void Remove(Outbox::Entries entries);
  domain::Result<Outbox::Entries> Claim(std::chrono::milliseconds min_age, std::size_t limit);
  domain::Result<bool> Holds(PacketId packet_id);

  RedisStoreCounters counters() const;

  // The state, shared by the files of this class (an internal class: no accessors).
  RedisStoreOptions options_;
  KeySpace keys_;
  BloomParameters bloom_;
  net::redis::Script create_, append_, grab_, close_, reserve_, snapshot_, count_, bloom_add_,
      expiry_add_, expiry_batch_fenced_, outbox_claim_, outbox_done_, outbox_holds_, release_;
  std::uint64_t generation_;
  std::vector<std::unique_ptr<IoSlot>> slots_;
  std::atomic<std::size_t> registered_{0};
  std::atomic<std::uint64_t> grabs_ok_{0}, grabs_retried_ok_{0}, grabs_unavailable_{0},
      bloom_rejections_{0}, metadata_cache_hits_{0}, refunds_recorded_{0}, outbox_removed_{0},
      outbox_claimed_{0};
};

template <class T, class Start>
domain::Result<T> RedisStoreImpl::Blocking(const char* what, Start start) {
  if (CurrentSlot() != nullptr) {
    return domain::MakeError(domain::ErrorCode::kInternal,
                             std::string(what) + " blocks: not from a store I/O thread");
  }
  auto promise = std::make_shared<std::promise<domain::Result<T>>>();
  auto future = promise->get_future();
  auto finish = [promise](domain::Result<T> value) { promise->set_value(std::move(value)); };
  IoSlot& first = *slots_.front();
  RunOn(first, [&first, start = std::move(start), finish]() mutable { start(first, finish); });
  if (future.wait_for(options_.blocking_timeout) != std::future_status::ready) {
    return domain::MakeError(domain::ErrorCode::kUnavailable,
                             std::string(what) + ": Redis did not answer in time");
  }
  return future.get();
}

}  // namespace redpacket::store::redis
