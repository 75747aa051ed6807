// RedisStore: the grab, create, snapshot and expiry flows over the per-I/O-thread cluster clients
// (see redis_store.h for the data layout and the threading contract).
#include "store/redis/redis_store.h"

#include <spdlog/spdlog.h>

#include <array>
#include <atomic>
#include <boost/asio/post.hpp>
#include <charconv>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <unordered_set>

#include "domain/grab_rules.h"
#include "domain/random.h"
#include "store/redis/bloom.h"
#include "store/redis/keys.h"
#include "store/redis/meta_cache.h"
#include "store/redis/script_replies.h"

#ifndef REDPACKET_LUA_DIR
#error "REDPACKET_LUA_DIR must be defined by the build (src/store/redis/CMakeLists.txt)"
#endif

namespace redpacket::store::redis {

namespace asio = boost::asio;
using domain::ErrorCode;
using domain::LedgerEvent;
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

GrabResult Failure(ErrorCode code, std::string message) {
  GrabResult result;
  result.code = code;
  result.message = std::move(message);
  return result;
}

// Errors at the Redis edge: what could succeed later is 503, a broken script or reply is 500.
GrabResult FromRedisError(const Error& error) {
  if (error.kind == ErrorKind::kNotReplicated) {
    return Failure(ErrorCode::kUnavailable, "not replicated: " + error.message);
  }
  if (error.retryable() || error.kind == ErrorKind::kStopped) {
    return Failure(ErrorCode::kUnavailable, "redis: " + error.ToString());
  }
  return Failure(ErrorCode::kInternal, "redis: " + error.ToString());
}

domain::Status StatusFromRedisError(const Error& error) {
  const GrabResult failure = FromRedisError(error);
  return domain::MakeError(failure.code, failure.message);
}

// Keeps the strings of one command's arguments alive while their views are handed out.
struct Arguments {
  std::vector<std::string> values;
  std::vector<std::string_view> Views() const { return {values.begin(), values.end()}; }
};

// Which RedisStoreImpl this thread is an I/O thread of, and with which slot. The generation (not
// the address) identifies the store, so a new store at a freed address is not mistaken for it.
struct ThreadBinding {
  std::uint64_t generation = 0;
  void* slot = nullptr;
};
thread_local ThreadBinding t_binding;
std::atomic<std::uint64_t> g_next_generation{1};

}  // namespace

struct IoSlot {
  IoSlot(asio::io_context& context, const net::redis::ClusterClientOptions& client_options,
         const RedisStoreOptions& options)
      : io(&context),
        client(std::make_unique<net::redis::ClusterClient>(context, client_options)),
        cache(options.metadata_ttl, options.metadata_ttl_jitter, options.metadata_cache_entries) {}

  asio::io_context* io;
  std::unique_ptr<net::redis::ClusterClient> client;
  MetaCache cache;              // this thread's only: no lock
  domain::CryptoRandom random;  // request tokens and cache TTL jitter
};

class RedisStoreImpl : public std::enable_shared_from_this<RedisStoreImpl> {
 public:
  RedisStoreImpl(std::span<asio::io_context* const> io_contexts,
                 std::vector<net::redis::Endpoint> seeds, bus::EventSink& sink,
                 RedisStoreOptions options)
      : options_(std::move(options)),
        sink_(sink),
        keys_(options_.key_prefix),
        bloom_(SizeBloomFilter(options_.bloom_capacity, options_.bloom_false_positive_rate)),
        create_(LoadScript(options_.lua_directory, "create.lua")),
        append_(LoadScript(options_.lua_directory, "append.lua")),
        grab_(LoadScript(options_.lua_directory, "grab.lua")),
        close_(LoadScript(options_.lua_directory, "close.lua")),
        refunded_(LoadScript(options_.lua_directory, "refunded.lua")),
        snapshot_(LoadScript(options_.lua_directory, "snapshot.lua")),
        count_(LoadScript(options_.lua_directory, "count.lua")),
        bloom_add_(LoadScript(options_.lua_directory, "bloom_add.lua")),
        expiry_add_(LoadScript(options_.lua_directory, "expiry_add.lua")),
        expiry_batch_fenced_(LoadScript(options_.lua_directory, "expiry_batch_fenced.lua")),
        generation_(g_next_generation.fetch_add(1)) {
    if (io_contexts.empty()) {
      throw std::invalid_argument("RedisStore needs at least one io_context");
    }
    if (options_.min_replicas < 0) throw std::invalid_argument("min_replicas must be >= 0");
    if (options_.load_chunk < 4) throw std::invalid_argument("load_chunk must be >= 4");
    if (options_.sweep_batch == 0) throw std::invalid_argument("sweep_batch must be > 0");
    options_.client.seeds = std::move(seeds);
    for (asio::io_context* io : io_contexts) {
      slots_.push_back(std::make_unique<IoSlot>(*io, options_.client, options_));
    }
  }

  // Called with the io_contexts stopped: outstanding callbacks run here with kStopped. The
  // clients go now, while their io_contexts still exist; handlers still queued in an io_context
  // (never to run) may keep this object alive past the store.
  void Stop() {
    for (auto& slot : slots_) slot->client->Stop();
    for (auto& slot : slots_) slot->client.reset();
  }

  // --- dispatch ---

  IoSlot* CurrentSlot() {
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

  // Runs `work(slot)` on this thread when it is one of the store's I/O threads, else on the first.
  template <class Work>
  void OnIoThread(Work work) {
    if (IoSlot* slot = CurrentSlot()) {
      work(*slot);
      return;
    }
    IoSlot& first = *slots_.front();
    asio::post(*first.io, [self = shared_from_this(), &first, work = std::move(work)]() mutable {
      work(first);
    });
  }

  // Posts `done` to the slot's thread: sink completions arrive on the sink's own thread.
  template <class Done>
  void RunOn(IoSlot& slot, Done done) {
    asio::post(*slot.io, [self = shared_from_this(), done = std::move(done)]() mutable { done(); });
  }

  void EvalDurable(IoSlot& slot, const Script& script, std::span<const std::string_view> keys,
                   std::span<const std::string_view> args, std::chrono::milliseconds timeout,
                   net::redis::Callback done) {
    const CommandOptions command{.timeout = timeout, .idempotent = true};
    if (options_.min_replicas == 0) {
      slot.client->Eval(script, keys, args, std::move(done), command);
    } else {
      slot.client->EvalAndWait(script, keys, args, options_.min_replicas,
                               options_.replication_timeout, std::move(done), command);
    }
  }

  // --- Connect ---

  void Connect(PacketStore::StatusCallback done) {
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
  void CheckBloomParameters(IoSlot& slot, PacketStore::StatusCallback done) {
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

  // --- Bloom filter ---

  // `done(maybe_present)`. On a Redis error the filter fails open: the packet keys answer.
  void CheckHealth(PacketStore::StatusCallback done) {
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

  template <class Done>
  void CheckBloom(IoSlot& slot, PacketId packet_id, Done done) {
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
            spdlog::debug("bloom lookup of packet {} failed ({}); asking the packet keys",
                          packet_id,
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

  // --- Add ---

  struct AddJob {
    ledger::PacketRecord record;
    PacketKeys keys;
    std::int64_t shares_to_load = 0;  // record.shares after the recovered grabs
    std::int64_t grabs_to_load = 0;
    PacketStore::StatusCallback done;
  };

  void Add(const ledger::PacketRecord& packet, PacketStore::StatusCallback done) {
    if (static_cast<std::int64_t>(packet.shares.size()) != packet.spec.count ||
        packet.grabs.size() > packet.shares.size()) {
      if (done) {
        done(domain::MakeError(ErrorCode::kInternal,
                               "packet " + std::to_string(packet.packet_id) + " has " +
                                   std::to_string(packet.shares.size()) + " shares for count " +
                                   std::to_string(packet.spec.count)));
      }
      return;
    }
    auto job = std::make_shared<AddJob>();
    job->record = packet;
    job->keys = keys_.ForPacket(packet.packet_id);
    job->grabs_to_load = static_cast<std::int64_t>(packet.grabs.size());
    job->shares_to_load = packet.spec.count - job->grabs_to_load;
    job->done = done ? std::move(done) : [](const domain::Status&) {};
    OnIoThread([this, job](IoSlot& slot) { AddBloomBits(slot, job); });
  }

  // Bloom bits first: once Add completes, no grab of this id may be turned away as unknown.
  void AddBloomBits(IoSlot& slot, const std::shared_ptr<AddJob>& job) {
    Arguments args;
    for (std::uint64_t offset : BloomBitOffsets(job->record.packet_id, bloom_)) {
      args.values.push_back(std::to_string(offset));
    }
    const std::array<std::string_view, 1> keys{keys_.bloom()};
    const auto views = args.Views();
    EvalDurable(slot, bloom_add_, keys, views, options_.client.command_timeout,
                [this, &slot, job](const Result& result) {
                  if (!result.ok()) return job->done(StatusFromRedisError(result.error()));
                  CreatePacketKeys(slot, job);
                });
  }

  void CreatePacketKeys(IoSlot& slot, const std::shared_ptr<AddJob>& job) {
    const ledger::PacketRecord& record = job->record;
    const std::int64_t expires_ms = domain::ToUnixMillis(record.expires_at);
    // Never in the past, even for a recovered packet long expired: its keys must live until the
    // sweeper has closed it and emitted its refund.
    const std::int64_t keys_expire_at_ms =
        std::max(expires_ms, domain::ToUnixMillis(domain::Clock::now())) +
        options_.key_grace.count();
    Arguments args;
    args.values = {std::to_string(record.spec.sender_id),
                   std::to_string(record.spec.total_cents),
                   std::to_string(record.spec.count),
                   domain::ToString(record.spec.kind),
                   record.spec.greeting,
                   record.spec.receiver_id ? std::to_string(*record.spec.receiver_id) : "",
                   std::to_string(domain::ToUnixMillis(record.created_at)),
                   std::to_string(expires_ms),
                   std::to_string(keys_expire_at_ms),
                   std::to_string(job->shares_to_load),
                   std::to_string(job->grabs_to_load)};
    AppendShares(job, 0, &args);
    RunLoadScript(slot, job, create_, args);
  }

  // Adds the shares [offset, offset + chunk) still to load (after the recovered grabs).
  void AppendShares(const std::shared_ptr<AddJob>& job, std::int64_t offset, Arguments* args) {
    const auto first = static_cast<std::size_t>(job->grabs_to_load + offset);
    const auto end = std::min(job->record.shares.size(), first + options_.load_chunk);
    for (std::size_t i = first; i < end; ++i) {
      args->values.push_back(std::to_string(job->record.shares[i]));
    }
  }

  void RunLoadScript(IoSlot& slot, const std::shared_ptr<AddJob>& job, const Script& script,
                     const Arguments& args) {
    const std::array<std::string_view, 3> keys{job->keys.meta, job->keys.shares, job->keys.grabs};
    const auto views = args.Views();
    EvalDurable(
        slot, script, keys, views, options_.client.command_timeout,
        [this, &slot, job](const Result& result) {
          if (!result.ok()) return job->done(StatusFromRedisError(result.error()));
          auto reply = ParseLoadReply(result.reply());
          if (!reply) {
            return job->done(domain::MakeError(
                ErrorCode::kInternal, "malformed load reply: " + result.reply().DebugString()));
          }
          ContinueLoad(slot, job, *reply);
        });
  }

  // Resumes from what Redis says is loaded, so a retried Add (or a retried chunk) continues
  // where the last one stopped instead of pushing a share twice.
  void ContinueLoad(IoSlot& slot, const std::shared_ptr<AddJob>& job, const LoadReply& state) {
    if (state.outcome == LoadReply::Outcome::kMissing) {
      return job->done(domain::MakeError(
          ErrorCode::kUnavailable,
          "packet " + std::to_string(job->record.packet_id) + " vanished while loading"));
    }
    if (state.status != "loading") return RegisterExpiry(slot, job, state.status);
    Arguments args;
    if (state.grabs_loaded < job->grabs_to_load) {
      args.values = {"grabs", std::to_string(state.grabs_loaded)};
      const auto first = static_cast<std::size_t>(state.grabs_loaded);
      const auto end = std::min(job->record.grabs.size(), first + options_.load_chunk / 4);
      for (std::size_t i = first; i < end; ++i) {
        const domain::Grab& grab = job->record.grabs[i];
        args.values.insert(
            args.values.end(),
            {std::to_string(grab.user_id), std::to_string(grab.amount_cents),
             std::to_string(grab.seq), std::to_string(domain::ToUnixMillis(grab.grabbed_at))});
      }
    } else if (state.shares_loaded < job->shares_to_load) {
      args.values = {"shares", std::to_string(state.shares_loaded)};
      AppendShares(job, state.shares_loaded, &args);
    } else {
      return job->done(domain::MakeError(ErrorCode::kInternal,
                                         "packet " + std::to_string(job->record.packet_id) +
                                             " is loading although everything is loaded"));
    }
    RunLoadScript(slot, job, append_, args);
  }

  // Last: a packet is registered for the sweeper only once its keys exist (a close before that
  // would find nothing and drop it). Finished packets need no sweeping.
  void RegisterExpiry(IoSlot& slot, const std::shared_ptr<AddJob>& job, const std::string& status) {
    if (status == "exhausted" || status == "refunded") return job->done({});
    const std::array<std::string_view, 1> keys{keys_.expiry()};
    const std::string expires = std::to_string(domain::ToUnixMillis(job->record.expires_at));
    const std::string member = std::to_string(job->record.packet_id);
    const std::array<std::string_view, 2> args{expires, member};
    EvalDurable(slot, expiry_add_, keys, args, options_.client.command_timeout,
                [job](const Result& result) {
                  if (!result.ok()) return job->done(StatusFromRedisError(result.error()));
                  job->done({});
                });
  }

  // --- Grab ---

  void Grab(PacketId packet_id, UserId user_id, TimePoint now, PacketStore::GrabCallback done) {
    OnIoThread([this, packet_id, user_id, now, done = std::move(done)](IoSlot& slot) mutable {
      if (const PacketMeta* meta = slot.cache.Find(packet_id, std::chrono::steady_clock::now())) {
        metadata_cache_hits_.fetch_add(1, std::memory_order_relaxed);
        // The receiver never changes: refused here without a script call (the script would
        // refuse it the same way, domain/grab_rules.h).
        if (meta->receiver_id && *meta->receiver_id != user_id) {
          domain::Error refusal = domain::GrabRefusal(domain::GrabDecision::kForbidden);
          return done(Failure(refusal.code, std::move(refusal.message)));
        }
        return RunGrab(slot, packet_id, user_id, now, false, std::move(done));
      }
      CheckBloom(
          slot, packet_id,
          [this, &slot, packet_id, user_id, now, done = std::move(done)](bool maybe) mutable {
            if (!maybe) return done(Failure(ErrorCode::kNotFound, "no such packet"));
            RunGrab(slot, packet_id, user_id, now, true, std::move(done));
          });
    });
  }

  // Why a request token: the grab is sent as an idempotent command, so when the connection dies
  // with it in flight the client sends it again (to the promoted replica after a failover). If
  // the first send did run and reached the replica, the script now finds this user's grab. A
  // plain 409 would then tell the user "already grabbed" for the grab this very request made;
  // treating any conflict after a resend as success cannot work either (the client does not
  // report resends, and a genuine second request of the same user must get 409). So each Grab
  // draws a random 64-bit token stored with the grab: a conflict carrying our own token is our
  // grab, answered 200 with its amount and seq.
  void RunGrab(IoSlot& slot, PacketId packet_id, UserId user_id, TimePoint now, bool want_meta,
               PacketStore::GrabCallback done) {
    const PacketKeys keys = keys_.ForPacket(packet_id);
    char token[17];
    std::snprintf(token, sizeof token, "%016llx",
                  static_cast<unsigned long long>(slot.random.Next64()));  // NOLINT(runtime/int)
    const std::string user_text = std::to_string(user_id);
    const std::string now_text = std::to_string(domain::ToUnixMillis(now));
    const std::array<std::string_view, 3> key_views{keys.meta, keys.shares, keys.grabs};
    const std::array<std::string_view, 4> args{user_text, now_text, token, want_meta ? "1" : "0"};
    EvalDurable(slot, grab_, key_views, args, options_.grab_timeout,
                [this, &slot, packet_id, user_id, done = std::move(done)](Result result) mutable {
                  OnGrabReply(slot, packet_id, user_id, std::move(result), std::move(done));
                });
  }

  void OnGrabReply(IoSlot& slot, PacketId packet_id, UserId user_id, Result result,
                   PacketStore::GrabCallback done) {
    if (!result.ok()) {
      grabs_unavailable_.fetch_add(1, std::memory_order_relaxed);
      return done(FromRedisError(result.error()));
    }
    std::optional<GrabReply> reply = ParseGrabReply(result.reply());
    if (!reply) {
      return done(
          Failure(ErrorCode::kInternal, "malformed grab reply: " + result.reply().DebugString()));
    }
    if (reply->meta) {
      slot.cache.Insert(packet_id, std::move(*reply->meta), std::chrono::steady_clock::now(),
                        slot.random);
    }
    GrabResult answer = ToGrabResult(*reply);
    const bool decided = reply->outcome == GrabReply::Outcome::kOk ||
                         reply->outcome == GrabReply::Outcome::kConflict;
    if (!decided) return done(std::move(answer));
    if (answer.code == ErrorCode::kOk) {
      (reply->outcome == GrabReply::Outcome::kOk ? grabs_ok_ : grabs_retried_ok_)
          .fetch_add(1, std::memory_order_relaxed);
    }
    // A 200 waits for the grab event to be durable (invariant 4). So does a 409: it reports the
    // first grab's amount, and that grab's event may still be in flight on whichever server made
    // it, which a crash there could lose. This server cannot see that sink, so it appends the
    // same event (same event id "g-<packet>-<user>", same amount, seq and time: read from Redis)
    // and answers once it is durable; consumers apply a repeated event id once (invariant 5).
    LedgerEvent event;
    event.type = LedgerEvent::Type::kGrab;
    event.packet_id = packet_id;
    event.user_id = user_id;
    event.amount_cents = reply->amount_cents;
    event.seq = reply->seq;
    event.at_millis = reply->at_ms;
    // Exactly one of the two callbacks runs; they share the reply.
    auto reply_once = std::make_shared<std::pair<GrabResult, PacketStore::GrabCallback>>(
        std::move(answer), std::move(done));
    sink_.Publish(
        event,
        [this, self = shared_from_this(), &slot, reply_once] {
          RunOn(slot, [reply_once] { reply_once->second(std::move(reply_once->first)); });
        },
        [this, self = shared_from_this(), &slot, reply_once](domain::Error error) {
          // The share stays taken in Redis: the reconciler finds the grab there and credits it
          // (its event id makes a late broker ack and the reconciler's copy one credit).
          grabs_unavailable_.fetch_add(1, std::memory_order_relaxed);
          RunOn(slot, [reply_once, message = std::move(error.message)] {
            reply_once->second(Failure(ErrorCode::kUnavailable, "event bus: " + message));
          });
        });
  }

  // --- Snapshot ---

  void Snapshot(PacketId packet_id, PacketStore::SnapshotCallback done) {
    OnIoThread([this, packet_id, done = std::move(done)](IoSlot& slot) mutable {
      if (slot.cache.Find(packet_id, std::chrono::steady_clock::now()) != nullptr) {
        metadata_cache_hits_.fetch_add(1, std::memory_order_relaxed);
        return RunSnapshot(slot, packet_id, std::move(done));
      }
      CheckBloom(slot, packet_id,
                 [this, &slot, packet_id, done = std::move(done)](bool maybe) mutable {
                   if (!maybe) return done(std::nullopt);
                   RunSnapshot(slot, packet_id, std::move(done));
                 });
    });
  }

  void CountGrabs(PacketId packet_id, PacketStore::CountCallback done) {
    OnIoThread([this, packet_id, done = std::move(done)](IoSlot& slot) mutable {
      const PacketKeys keys = keys_.ForPacket(packet_id);
      const std::array<std::string_view, 2> key_views{keys.meta, keys.grabs};
      slot.client->Eval(count_, key_views, {},
                        [done = std::move(done)](const Result& result) mutable {
                          if (!result.ok()) return done(StatusFromRedisError(result.error()).error());
                          if (!result.reply().IsInteger()) {
                            return done(domain::MakeError(ErrorCode::kInternal,
                                                          "malformed count reply: " +
                                                              result.reply().DebugString()));
                          }
                          const std::int64_t count = result.reply().integer();
                          if (count < 0) return done(std::optional<std::int64_t>());
                          done(std::optional<std::int64_t>(count));
                        });
    });
  }

  void RunSnapshot(IoSlot& slot, PacketId packet_id, PacketStore::SnapshotCallback done) {
    const PacketKeys keys = keys_.ForPacket(packet_id);
    const std::array<std::string_view, 3> key_views{keys.meta, keys.shares, keys.grabs};
    slot.client->Eval(
        snapshot_, key_views, {},
        [this, &slot, packet_id, done = std::move(done)](const Result& result) mutable {
          if (!result.ok()) {
            spdlog::warn("snapshot of packet {}: {}", packet_id, result.error().ToString());
            return done(std::nullopt);
          }
          auto snapshot = ParseSnapshotReply(result.reply(), packet_id, domain::Clock::now());
          if (!snapshot) {
            spdlog::error("snapshot of packet {}: {}", packet_id, snapshot.error().message);
            return done(std::nullopt);
          }
          if (snapshot->has_value()) {
            const ledger::PacketRecord& record = (*snapshot)->record;
            PacketMeta meta{record.spec.sender_id,
                            record.spec.total_cents,
                            record.spec.count,
                            record.spec.kind,
                            record.spec.receiver_id,
                            domain::ToUnixMillis(record.created_at),
                            domain::ToUnixMillis(record.expires_at),
                            record.spec.greeting};
            slot.cache.Insert(packet_id, std::move(meta), std::chrono::steady_clock::now(),
                              slot.random);
          }
          done(std::move(*snapshot));
        },
        CommandOptions{.idempotent = true});
  }

  // --- Sweep ---

  struct SweepRun {
    std::mutex mutex;
    std::condition_variable finished_signal;
    bool finished = false;
    SweepStats stats;
    std::int64_t now_ms = 0;
    std::size_t pending = 0;  // closes and refunds of the current batch not yet settled
    std::size_t removed = 0;  // ids of the current batch dropped from {rp:expiry}
    std::size_t batch_size = 0;
    std::optional<std::uint64_t> fencing_token;  // a fenced sweep: checked at every batch
    std::optional<std::uint64_t> fenced_by;      // refused: the higher token seen in Redis
  };

  domain::Result<SweepStats> FencedSweep(TimePoint now, std::uint64_t fencing_token) {
    auto run = std::make_shared<SweepRun>();
    run->fencing_token = fencing_token;
    const SweepStats stats = Sweep(now, run);
    std::lock_guard lock(run->mutex);
    if (run->fenced_by) {
      return domain::MakeError(domain::ErrorCode::kConflict,
                               "sweep fenced: token " + std::to_string(fencing_token) +
                                   " is lower than " + std::to_string(*run->fenced_by));
    }
    return stats;
  }

  SweepStats Sweep(TimePoint now, std::shared_ptr<SweepRun> run = std::make_shared<SweepRun>()) {
    if (CurrentSlot() != nullptr) {
      spdlog::error("RedisStore::Sweep called on an I/O thread; it blocks, so it did nothing");
      return {};
    }
    run->now_ms = domain::ToUnixMillis(now);
    IoSlot& slot = *slots_.front();
    RunOn(slot, [this, &slot, run] { SweepBatch(slot, run); });
    std::unique_lock lock(run->mutex);
    if (!run->finished_signal.wait_for(lock, options_.sweep_timeout,
                                       [&] { return run->finished; })) {
      spdlog::warn("sweep: not finished after {} ms; the rest continues in the background",
                   options_.sweep_timeout.count());
    }
    return run->stats;
  }

  void SweepBatch(IoSlot& slot, const std::shared_ptr<SweepRun>& run) {
    const std::string& key = keys_.expiry();
    const std::string until = std::to_string(run->now_ms);
    const std::string limit = std::to_string(options_.sweep_batch);
    auto on_batch = [this, &slot, run](const Result& result) {
      if (!result.ok() && result.error().message.starts_with("FENCED ")) {
        // A newer sweeper has run: this one stops before touching another packet.
        std::uint64_t seen = 0;
        const std::string& text = result.error().message;
        std::from_chars(text.data() + 7, text.data() + text.size(), seen);
        spdlog::warn("sweep: fenced, token {} < {}", *run->fencing_token, seen);
        {
          std::lock_guard lock(run->mutex);
          run->fenced_by = seen;
        }
        return FinishSweep(slot, run);
      }
      if (!result.ok() || !result.reply().IsArray()) {
        spdlog::warn("sweep: cannot read {}: {}", keys_.expiry(),
                     result.ok() ? result.reply().DebugString() : result.error().ToString());
        return FinishSweep(slot, run);
      }
      std::vector<PacketId> ids;
      for (const Reply& member : result.reply().array()) {
        PacketId id = 0;
        if (!member.IsString()) continue;
        const std::string& text = member.string();
        const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), id);
        if (error == std::errc() && end == text.data() + text.size()) ids.push_back(id);
      }
      {
        std::lock_guard lock(run->mutex);
        run->pending = ids.size() + 1;  // +1: this loop, so the batch cannot end inside it
        run->removed = 0;
        run->batch_size = result.reply().array().size();
      }
      for (PacketId id : ids) {
        if (refunds_in_flight_.contains(id)) {
          SettleOne(slot, run, false);  // an earlier sweep's refund is still on its way
          continue;
        }
        ClosePacket(slot, run, id);
      }
      SettleOne(slot, run, false);
    };
    if (!run->fencing_token) {
      slot.client->Execute(key, {"ZRANGEBYSCORE", key, "-inf", until, "LIMIT", "0", limit},
                           std::move(on_batch), CommandOptions{.idempotent = true});
      return;
    }
    // Durable (WAIT): a fence lost in a failover would let an older token through again.
    const std::string token = std::to_string(*run->fencing_token);
    const std::array<std::string_view, 2> keys{key, keys_.expiry_fence()};
    const std::array<std::string_view, 3> args{token, until, limit};
    EvalDurable(slot, expiry_batch_fenced_, keys, args, options_.client.command_timeout,
                std::move(on_batch));
  }

  void ClosePacket(IoSlot& slot, const std::shared_ptr<SweepRun>& run, PacketId packet_id) {
    const PacketKeys keys = keys_.ForPacket(packet_id);
    const std::array<std::string_view, 3> key_views{keys.meta, keys.shares, keys.grabs};
    const std::string now_text = std::to_string(run->now_ms);
    const std::array<std::string_view, 1> args{now_text};
    EvalDurable(
        slot, close_, key_views, args, options_.client.command_timeout,
        [this, &slot, run, packet_id](const Result& result) {
          std::optional<CloseReply> reply;
          if (result.ok()) reply = ParseCloseReply(result.reply());
          if (!reply) {
            spdlog::warn("sweep: closing packet {} failed: {}", packet_id,
                         result.ok() ? result.reply().DebugString() : result.error().ToString());
            return SettleOne(slot, run, false);  // stays in {rp:expiry}: the next sweep retries
          }
          using Outcome = CloseReply::Outcome;
          switch (reply->outcome) {
            case Outcome::kClosed: {
              std::lock_guard lock(run->mutex);
              ++run->stats.closed;
            }
              return EmitRefund(slot, run, packet_id, *reply);
            case Outcome::kAlready:
              // Closed by an earlier sweep whose refund never became durable (it crashed, or
              // gave up): emitted again once the closer had ample time, under the same event
              // id, so the ledger still credits it once. Within that time it is left alone, so a
              // concurrent sweeper's refund is not duplicated.
              if (reply->status == "expired" &&
                  run->now_ms - reply->closed_ms >= kRefundReemitAfter.count()) {
                return EmitRefund(slot, run, packet_id, *reply);
              }
              if (reply->status == "expired") return SettleOne(slot, run, false);
              return Unregister(slot, run, packet_id);
            case Outcome::kExhausted:
            case Outcome::kUnknown:
              return Unregister(slot, run, packet_id);
            case Outcome::kOpen:
            case Outcome::kLoading:
              return SettleOne(slot, run, false);
          }
        });
  }

  // Refunds are emitted once per packet: only by the sweep whose close answered 'closed' (or a
  // later one after kRefundReemitAfter), and this process skips ids whose refund it has in flight.
  void EmitRefund(IoSlot& slot, const std::shared_ptr<SweepRun>& run, PacketId packet_id,
                  const CloseReply& reply) {
    refunds_in_flight_.insert(packet_id);
    auto finish = [this, &slot, run, packet_id] { MarkRefunded(slot, run, packet_id); };
    if (reply.refund_cents <= 0) return finish();
    LedgerEvent event;
    event.type = LedgerEvent::Type::kRefund;
    event.packet_id = packet_id;
    event.user_id = reply.sender_id;
    event.amount_cents = reply.refund_cents;
    event.at_millis = run->now_ms;
    refunds_emitted_.fetch_add(1, std::memory_order_relaxed);
    sink_.Publish(
        event, [this, self = shared_from_this(), &slot, finish] { RunOn(slot, finish); },
        [this, self = shared_from_this(), &slot, run, packet_id](domain::Error error) {
          RunOn(slot, [this, &slot, run, packet_id, message = std::move(error.message)] {
            // Stays 'expired' and registered: a later sweep emits the refund again (one
            // event id, so the ledger credits it once however often it arrives).
            spdlog::warn("sweep: the refund of packet {} was not acknowledged: {}", packet_id,
                         message);
            refunds_in_flight_.erase(packet_id);
            SettleOne(slot, run, false);
          });
        });
  }

  void MarkRefunded(IoSlot& slot, const std::shared_ptr<SweepRun>& run, PacketId packet_id) {
    const PacketKeys keys = keys_.ForPacket(packet_id);
    const std::array<std::string_view, 1> key_views{keys.meta};
    EvalDurable(slot, refunded_, key_views, {}, options_.client.command_timeout,
                [this, &slot, run, packet_id](const Result& result) {
                  refunds_in_flight_.erase(packet_id);
                  if (!result.ok()) {
                    // Stays 'expired' and registered: re-emitted after kRefundReemitAfter.
                    spdlog::warn("sweep: marking packet {} refunded failed: {}", packet_id,
                                 result.error().ToString());
                    return SettleOne(slot, run, false);
                  }
                  Unregister(slot, run, packet_id);
                });
  }

  void Unregister(IoSlot& slot, const std::shared_ptr<SweepRun>& run, PacketId packet_id) {
    const std::string& key = keys_.expiry();
    const std::string member = std::to_string(packet_id);
    slot.client->Execute(
        key, {"ZREM", key, member},
        [this, &slot, run](const Result& result) { SettleOne(slot, run, result.ok()); },
        CommandOptions{.idempotent = true});
  }

  // One id of the batch is done; the last one starts the next batch or ends the sweep. A next
  // batch only when this one was full and made progress (ids still loading stay registered and
  // must not make the sweep spin).
  void SettleOne(IoSlot& slot, const std::shared_ptr<SweepRun>& run, bool removed) {
    bool next = false;
    {
      std::lock_guard lock(run->mutex);
      if (removed) ++run->removed;
      if (--run->pending != 0) return;
      next = run->batch_size == options_.sweep_batch && run->removed > 0;
    }
    if (next) return SweepBatch(slot, run);
    FinishSweep(slot, run);
  }

  void FinishSweep(IoSlot& slot, const std::shared_ptr<SweepRun>& run) {
    const std::string& key = keys_.expiry();
    slot.client->Execute(
        key, {"ZCARD", key},
        [this, run](const Result& result) {
          if (result.ok() && result.reply().IsInteger()) {
            registered_.store(static_cast<std::size_t>(result.reply().integer()),
                              std::memory_order_relaxed);
          }
          {
            std::lock_guard lock(run->mutex);
            run->finished = true;
          }
          run->finished_signal.notify_all();
        },
        CommandOptions{.idempotent = true});
  }

  std::size_t size() const { return registered_.load(std::memory_order_relaxed); }

  RedisStoreCounters counters() const {
    RedisStoreCounters counters;
    counters.grabs_ok = grabs_ok_.load(std::memory_order_relaxed);
    counters.grabs_retried_ok = grabs_retried_ok_.load(std::memory_order_relaxed);
    counters.grabs_unavailable = grabs_unavailable_.load(std::memory_order_relaxed);
    counters.bloom_rejections = bloom_rejections_.load(std::memory_order_relaxed);
    counters.metadata_cache_hits = metadata_cache_hits_.load(std::memory_order_relaxed);
    counters.refunds_emitted = refunds_emitted_.load(std::memory_order_relaxed);
    return counters;
  }

 private:
  // How long a closed packet whose refund is not marked durable is left to its closer.
  static constexpr std::chrono::milliseconds kRefundReemitAfter{std::chrono::minutes(5)};

  RedisStoreOptions options_;
  bus::EventSink& sink_;
  KeySpace keys_;
  BloomParameters bloom_;
  Script create_, append_, grab_, close_, refunded_, snapshot_, count_, bloom_add_, expiry_add_,
      expiry_batch_fenced_;
  std::uint64_t generation_;
  std::vector<std::unique_ptr<IoSlot>> slots_;
  std::unordered_set<PacketId> refunds_in_flight_;  // first slot's thread only (the sweeper's)
  std::atomic<std::size_t> registered_{0};
  std::atomic<std::uint64_t> grabs_ok_{0}, grabs_retried_ok_{0}, grabs_unavailable_{0},
      bloom_rejections_{0}, metadata_cache_hits_{0}, refunds_emitted_{0};
};

RedisStore::RedisStore(std::span<asio::io_context* const> io_contexts,
                       std::vector<net::redis::Endpoint> seeds, bus::EventSink& sink,
                       RedisStoreOptions options)
    : impl_(std::make_shared<RedisStoreImpl>(io_contexts, std::move(seeds), sink,
                                             std::move(options))) {}

RedisStore::~RedisStore() { impl_->Stop(); }

void RedisStore::Connect(StatusCallback done) { impl_->Connect(std::move(done)); }

void RedisStore::CheckHealth(StatusCallback done) { impl_->CheckHealth(std::move(done)); }

void RedisStore::Add(const ledger::PacketRecord& packet, StatusCallback done) {
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

RedisStoreCounters RedisStore::counters() const { return impl_->counters(); }

}  // namespace redpacket::store::redis
