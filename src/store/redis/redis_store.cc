// RedisStore: the facade, the dispatch onto the per-I/O-thread cluster clients, start-up (slot
// map, Bloom filter parameters), health, counters (see redis_store.h for the data layout and the
// threading contract; the flows are in redis_load.cc, redis_grab.cc, redis_sweep.cc and
// redis_outbox.cc).
#include "store/redis/redis_store.h"

#include <spdlog/spdlog.h>

#include <fstream>
#include <sstream>
#include <stdexcept>

#include "store/redis/redis_store_impl.h"

#ifndef REDPACKET_LUA_DIR
#error "REDPACKET_LUA_DIR must be defined by the build (src/store/redis/CMakeLists.txt)"
#endif

namespace redpacket::store::redis {

namespace asio = boost::asio;
using domain::ErrorCode;
using net::redis::CommandOptions;
using net::redis::Error;
using net::redis::ErrorKind;
using net::redis::Reply;
using net::redis::Result;
using net::redis::Script;

std::filesystem::path DefaultLuaDirectory() { return REDPACKET_LUA_DIR; }

namespace {

Script LoadScript(const std::filesystem::path& directory, const char* name) {
  const std::filesystem::path path = directory / name;
  std::ifstream file(path, std::ios::binary);
  if (!file) {
    throw std::runtime_error("cannot read Lua script " + path.string() +
                             " (set the store's lua_directory to src/store/redis/lua)");
  }
  std::ostringstream text;
  text << file.rdbuf();
  return Script(text.str());
}

// Which RedisStoreImpl this thread is an I/O thread of, and with which slot. The generation (not
// the address) identifies the store, so a new store at a freed address is not mistaken for it.
struct ThreadBinding {
  std::uint64_t generation = 0;
  void* slot = nullptr;
};
thread_local ThreadBinding t_binding;
std::atomic<std::uint64_t> g_next_generation{1};

}  // namespace

GrabResult FromRedisError(const Error& error) {
  if (error.kind == ErrorKind::kNotReplicated) {
    return GrabResult::Failed(ErrorCode::kUnavailable, "not replicated: " + error.message);
  }
  if (error.retryable() || error.kind == ErrorKind::kStopped) {
    return GrabResult::Failed(ErrorCode::kUnavailable, "redis: " + error.ToString());
  }
  return GrabResult::Failed(ErrorCode::kInternal, "redis: " + error.ToString());
}

domain::Status StatusFromRedisError(const Error& error) {
  const GrabResult failure = FromRedisError(error);
  return domain::MakeError(failure.code, failure.message);
}

RedisStoreImpl::RedisStoreImpl(std::span<asio::io_context* const> io_contexts,
                               std::vector<net::redis::Endpoint> seeds, RedisStoreOptions options)
    : options_(std::move(options)),
      keys_(options_.key_prefix),
      bloom_(SizeBloomFilter(options_.bloom_capacity, options_.bloom_false_positive_rate)),
      create_(LoadScript(options_.lua_directory, "create.lua")),
      append_(LoadScript(options_.lua_directory, "append.lua")),
      grab_(LoadScript(options_.lua_directory, "grab.lua")),
      close_(LoadScript(options_.lua_directory, "close.lua")),
      reserve_(LoadScript(options_.lua_directory, "reserve.lua")),
      snapshot_(LoadScript(options_.lua_directory, "snapshot.lua")),
      count_(LoadScript(options_.lua_directory, "count.lua")),
      bloom_add_(LoadScript(options_.lua_directory, "bloom_add.lua")),
      expiry_add_(LoadScript(options_.lua_directory, "expiry_add.lua")),
      expiry_batch_fenced_(LoadScript(options_.lua_directory, "expiry_batch_fenced.lua")),
      outbox_claim_(LoadScript(options_.lua_directory, "outbox_claim.lua")),
      outbox_done_(LoadScript(options_.lua_directory, "outbox_done.lua")),
      outbox_holds_(LoadScript(options_.lua_directory, "outbox_holds.lua")),
      release_(LoadScript(options_.lua_directory, "release.lua")),
      generation_(g_next_generation.fetch_add(1)) {
  if (io_contexts.empty()) throw std::invalid_argument("RedisStore needs at least one io_context");
  if (options_.min_replicas < 0) throw std::invalid_argument("min_replicas must be >= 0");
  if (options_.load_chunk < 4) throw std::invalid_argument("load_chunk must be >= 4");
  if (options_.sweep_batch == 0) throw std::invalid_argument("sweep_batch must be > 0");
  options_.client.seeds = std::move(seeds);
  for (asio::io_context* io : io_contexts) {
    slots_.push_back(std::make_unique<IoSlot>(*io, options_.client, options_));
  }
}

// The clients go now, while their io_contexts still exist; handlers still queued in an
// io_context (never to run) may keep this object alive past the store.
void RedisStoreImpl::Stop() {
  for (auto& slot : slots_) slot->client->Stop();
  for (auto& slot : slots_) slot->client.reset();
}

IoSlot* RedisStoreImpl::CurrentSlot() {
  if (t_binding.generation == generation_) {
    auto* slot = static_cast<IoSlot*>(t_binding.slot);
    // Still true unless this thread stopped running that io_context (tests do that).
    if (slot->io->get_executor().running_in_this_thread()) return slot;
  }
  for (auto& slot : slots_) {
    if (slot->io->get_executor().running_in_this_thread()) {
      t_binding = {generation_, slot.get()};
      return slot.get();
    }
  }
  return nullptr;
}

void RedisStoreImpl::EvalDurable(IoSlot& slot, const Script& script,
                                 std::span<const std::string_view> keys,
                                 std::span<const std::string_view> args,
                                 std::chrono::milliseconds timeout, net::redis::Callback done) {
  const CommandOptions command{.timeout = timeout, .idempotent = true};
  if (options_.min_replicas == 0) {
    slot.client->Eval(script, keys, args, std::move(done), command);
  } else {
    slot.client->EvalAndWait(script, keys, args, options_.min_replicas,
                             options_.replication_timeout, std::move(done), command);
  }
}

void RedisStoreImpl::Recorded(OutboxEntry entry) {
  if (options_.on_recorded) options_.on_recorded(std::move(entry));
}

// --- Connect ---

void RedisStoreImpl::Connect(PacketStore::StatusCallback done) {
  struct Pending {
    std::mutex mutex;
    std::size_t remaining = 0;
    std::optional<Error> error;
    PacketStore::StatusCallback done;
  };
  auto pending = std::make_shared<Pending>();
  pending->remaining = slots_.size();
  pending->done = std::move(done);
  for (auto& slot_pointer : slots_) {
    IoSlot& slot = *slot_pointer;
    asio::post(*slot.io, [self = shared_from_this(), &slot, pending] {
      slot.client->Connect([self, &slot, pending](std::optional<Error> error) {
        bool last = false;
        {
          std::lock_guard lock(pending->mutex);
          if (error && !pending->error) pending->error = std::move(error);
          last = --pending->remaining == 0;
        }
        if (!last) return;
        if (pending->error) return pending->done(StatusFromRedisError(*pending->error));
        self->CheckBloomParameters(slot, std::move(pending->done));
      });
    });
  }
}

// SET NX GET: the first store records the filter's size, every later one must match it.
void RedisStoreImpl::CheckBloomParameters(IoSlot& slot, PacketStore::StatusCallback done) {
  const std::string expected =
      "bits=" + std::to_string(bloom_.bits) + " hashes=" + std::to_string(bloom_.hashes);
  const std::string& key = keys_.bloom_parameters();
  slot.client->Execute(
      key, {"SET", key, expected, "NX", "GET"},
      [expected, done = std::move(done)](const Result& result) {
        if (!result.ok()) return done(StatusFromRedisError(result.error()));
        if (result.reply().IsString() && result.reply().string() != expected) {
          return done(domain::MakeError(
              ErrorCode::kInternal,
              "the Bloom filter in Redis was sized '" + result.reply().string() +
                  "' but this server is configured for '" + expected +
                  "': use the same bloom capacity and false-positive rate everywhere"));
        }
        done({});
      },
      CommandOptions{.idempotent = true});
}

// --- health and the Bloom filter ---

void RedisStoreImpl::CheckHealth(PacketStore::StatusCallback done) {
  OnIoThread([this, done = std::move(done)](IoSlot& slot) mutable {
    slot.client->Execute(
        keys_.bloom(), {"PING"},
        [done = std::move(done)](const Result& result) mutable {
          if (result.ok()) return done({});
          done(domain::MakeError(domain::ErrorCode::kUnavailable,
                                 "redis unreachable: " + result.error().ToString()));
        },
        CommandOptions{.timeout = std::chrono::milliseconds(1000), .idempotent = true});
  });
}

void RedisStoreImpl::CheckBloom(IoSlot& slot, PacketId packet_id, std::function<void(bool)> done) {
  Arguments argv;
  argv.values = {"BITFIELD_RO", keys_.bloom()};
  for (std::uint64_t offset : BloomBitOffsets(packet_id, bloom_)) {
    argv.values.insert(argv.values.end(), {"GET", "u1", std::to_string(offset)});
  }
  const auto views = argv.Views();
  slot.client->Execute(
      keys_.bloom(), views,
      [this, packet_id, done = std::move(done)](const Result& result) mutable {
        if (!result.ok() || !result.reply().IsArray()) {
          spdlog::debug("bloom lookup of packet {} failed ({}); asking the packet keys", packet_id,
                        result.ok() ? result.reply().DebugString() : result.error().ToString());
          return done(true);
        }
        for (const Reply& bit : result.reply().array()) {
          if (bit.IsInteger() && bit.integer() == 0) {
            bloom_rejections_.fetch_add(1, std::memory_order_relaxed);
            return done(false);
          }
        }
        done(true);
      },
      CommandOptions{.idempotent = true});
}

RedisStoreCounters RedisStoreImpl::counters() const {
  RedisStoreCounters counters;
  counters.grabs_ok = grabs_ok_.load(std::memory_order_relaxed);
  counters.grabs_retried_ok = grabs_retried_ok_.load(std::memory_order_relaxed);
  counters.grabs_unavailable = grabs_unavailable_.load(std::memory_order_relaxed);
  counters.bloom_rejections = bloom_rejections_.load(std::memory_order_relaxed);
  counters.metadata_cache_hits = metadata_cache_hits_.load(std::memory_order_relaxed);
  counters.refunds_recorded = refunds_recorded_.load(std::memory_order_relaxed);
  counters.outbox_removed = outbox_removed_.load(std::memory_order_relaxed);
  counters.outbox_claimed = outbox_claimed_.load(std::memory_order_relaxed);
  return counters;
}

// --- the facade ---

RedisStore::RedisStore(std::span<asio::io_context* const> io_contexts,
                       std::vector<net::redis::Endpoint> seeds, RedisStoreOptions options)
    : impl_(std::make_shared<RedisStoreImpl>(io_contexts, std::move(seeds), std::move(options))) {}

RedisStore::~RedisStore() { impl_->Stop(); }

void RedisStore::Connect(StatusCallback done) { impl_->Connect(std::move(done)); }
void RedisStore::CheckHealth(StatusCallback done) { impl_->CheckHealth(std::move(done)); }
void RedisStore::Add(const domain::PacketRecord& packet, StatusCallback done) {
  impl_->Add(packet, std::move(done));
}
void RedisStore::Grab(PacketId packet_id, UserId user_id, TimePoint now, GrabCallback done) {
  impl_->Grab(packet_id, user_id, now, std::move(done));
}
void RedisStore::Snapshot(PacketId packet_id, SnapshotCallback done) {
  impl_->Snapshot(packet_id, std::move(done));
}
void RedisStore::CountGrabs(PacketId packet_id, CountCallback done) {
  impl_->CountGrabs(packet_id, std::move(done));
}
SweepStats RedisStore::Sweep(TimePoint now, std::uint64_t /*applied_position*/,
                             std::chrono::milliseconds /*retention*/) {
  return impl_->Sweep(now);
}
domain::Result<SweepStats> RedisStore::FencedSweep(TimePoint now, std::uint64_t fencing_token) {
  return impl_->FencedSweep(now, fencing_token);
}
std::size_t RedisStore::size() const { return impl_->size(); }
domain::Result<Reservation> RedisStore::Reserve(PacketId packet_id, TimePoint expires_at) {
  return impl_->Reserve(packet_id, expires_at);
}
void RedisStore::ReportLost(PacketId packet_id) { impl_->ReportLost(packet_id); }
domain::Result<std::vector<PacketId>> RedisStore::TakeLost(std::size_t limit) {
  return impl_->TakeLost(limit);
}
domain::Status RedisStore::Unregister(PacketId packet_id) { return impl_->Unregister(packet_id); }
void RedisStore::Remove(Entries entries) { impl_->Remove(std::move(entries)); }
domain::Result<RedisStore::Entries> RedisStore::Claim(std::chrono::milliseconds min_age,
                                                      std::size_t limit) {
  return impl_->Claim(min_age, limit);
}
domain::Result<bool> RedisStore::Holds(PacketId packet_id) { return impl_->Holds(packet_id); }
RedisStoreCounters RedisStore::counters() const { return impl_->counters(); }

}  // namespace redpacket::store::redis
