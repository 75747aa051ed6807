// RedisStore: grabs (grab.lua, then WAIT; the recorded event is handed to the relay), the
// details of a packet (snapshot.lua) and its grab count (count.lua).
#include <spdlog/spdlog.h>

#include <array>
#include <cstdio>

#include "domain/grab_rules.h"
#include "store/redis/redis_store_impl.h"

namespace redpacket::store::redis {

using domain::ErrorCode;
using net::redis::CommandOptions;
using net::redis::Result;

void RedisStoreImpl::Grab(PacketId packet_id, UserId user_id, TimePoint now,
                          PacketStore::GrabCallback done) {
  OnIoThread([this, packet_id, user_id, now, done = std::move(done)](IoSlot& slot) mutable {
    if (const PacketMeta* meta = slot.cache.Find(packet_id, std::chrono::steady_clock::now())) {
      metadata_cache_hits_.fetch_add(1, std::memory_order_relaxed);
      // The receiver never changes: refused here without a script call (the script would
      // refuse it the same way, domain/grab_rules.h).
      if (meta->receiver_id && *meta->receiver_id != user_id) {
        return done(GrabResult::Refused(domain::GrabDecision::kForbidden));
      }
      return RunGrab(slot, packet_id, user_id, now, false, std::move(done));
    }
    CheckBloom(slot, packet_id,
               [this, &slot, packet_id, user_id, now, done = std::move(done)](bool maybe) mutable {
                 if (!maybe)
                   return done(GrabResult::Failed(ErrorCode::kNotFound, "no such packet"));
                 RunGrab(slot, packet_id, user_id, now, true, std::move(done));
               });
  });
}

// Why a request token: the grab is sent as an idempotent command, so when the connection dies
// with it in flight the client sends it again (to the promoted replica after a failover). If the
// first send did run and reached the replica, the script now finds this user's grab. A plain 409
// would then tell the user "already grabbed" for the grab this very request made; treating any
// conflict after a resend as success cannot work either (the client does not report resends, and
// a genuine second request of the same user must get 409). So each Grab draws a random 64-bit
// token stored with the grab: a conflict carrying our own token is our grab, answered 200 with
// its amount and seq.
void RedisStoreImpl::RunGrab(IoSlot& slot, PacketId packet_id, UserId user_id, TimePoint now,
                             bool want_meta, PacketStore::GrabCallback done) {
  const PacketKeys keys = keys_.ForPacket(packet_id);
  const std::string& outbox = keys_.OutboxOf(keys_.SlotOf(packet_id));
  char token[17];
  std::snprintf(token, sizeof token, "%016llx",
                static_cast<unsigned long long>(slot.random.Next64()));  // NOLINT(runtime/int)
  const std::string user_text = std::to_string(user_id);
  const std::string now_text = std::to_string(domain::ToUnixMillis(now));
  const std::string packet_text = std::to_string(packet_id);
  const std::array<std::string_view, 4> key_views{keys.meta, keys.shares, keys.grabs, outbox};
  const std::array<std::string_view, 5> args{user_text, now_text, token, want_meta ? "1" : "0",
                                             packet_text};
  EvalDurable(slot, grab_, key_views, args, options_.grab_timeout,
              [this, &slot, packet_id, user_id, done = std::move(done)](Result result) mutable {
                OnGrabReply(slot, packet_id, user_id, std::move(result), std::move(done));
              });
}

// Decided once, published always: the script recorded the grab and its event together, and the
// WAIT before this callback proves a replica holds both, so the answer (200, or 409 with the
// first grab's amount) no longer depends on anything else, and the event is handed to the relay.
// A WAIT that timed out answers 503: the grab may be lost with this master, and its entry stays
// in the outbox until the relay's recovery finds it replicated (or the failover took it back).
void RedisStoreImpl::OnGrabReply(IoSlot& slot, PacketId packet_id, UserId user_id, Result result,
                                 PacketStore::GrabCallback done) {
  if (!result.ok()) {
    grabs_unavailable_.fetch_add(1, std::memory_order_relaxed);
    return done(FromRedisError(result.error()));
  }
  std::optional<GrabReply> reply = ParseGrabReply(result.reply());
  if (!reply) {
    return done(GrabResult::Failed(ErrorCode::kInternal,
                                   "malformed grab reply: " + result.reply().DebugString()));
  }
  if (reply->meta) {
    slot.cache.Insert(packet_id, std::move(*reply->meta), std::chrono::steady_clock::now(),
                      slot.random);
  }
  GrabResult answer = ToGrabResult(*reply);
  if (answer.code == ErrorCode::kOk) {
    (reply->outcome == GrabReply::Outcome::kOk ? grabs_ok_ : grabs_retried_ok_)
        .fetch_add(1, std::memory_order_relaxed);
  }
  if (reply->outcome == GrabReply::Outcome::kOk) {
    OutboxEntry entry;
    entry.shard = keys_.SlotOf(packet_id);
    entry.id = std::move(reply->outbox_id);
    entry.event = domain::LedgerEvent::Grab(packet_id, user_id, reply->amount_cents, reply->seq,
                                            reply->at_ms);
    Recorded(std::move(entry));
  }
  done(std::move(answer));
}

void RedisStoreImpl::Snapshot(PacketId packet_id, PacketStore::SnapshotCallback done) {
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

void RedisStoreImpl::RunSnapshot(IoSlot& slot, PacketId packet_id,
                                 PacketStore::SnapshotCallback done) {
  const PacketKeys keys = keys_.ForPacket(packet_id);
  const std::array<std::string_view, 3> key_views{keys.meta, keys.shares, keys.grabs};
  slot.client->Eval(
      snapshot_, key_views, {},
      [this, &slot, packet_id, done = std::move(done)](const Result& result) mutable {
        if (!result.ok()) {
          spdlog::warn("snapshot of packet {}: {}", packet_id, result.error().ToString());
          return done(std::nullopt);
        }
        auto snapshot = ParseSnapshotReply(result.reply(), packet_id, options_.clock->Now());
        if (!snapshot) {
          spdlog::error("snapshot of packet {}: {}", packet_id, snapshot.error().message);
          return done(std::nullopt);
        }
        if (snapshot->has_value()) {
          const domain::PacketRecord& record = (*snapshot)->record;
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

void RedisStoreImpl::CountGrabs(PacketId packet_id, PacketStore::CountCallback done) {
  OnIoThread([this, packet_id, done = std::move(done)](IoSlot& slot) mutable {
    const PacketKeys keys = keys_.ForPacket(packet_id);
    const std::array<std::string_view, 2> key_views{keys.meta, keys.grabs};
    slot.client->Eval(
        count_, key_views, {}, [done = std::move(done)](const Result& result) mutable {
          if (!result.ok()) return done(StatusFromRedisError(result.error()).error());
          if (!result.reply().IsInteger()) {
            return done(domain::MakeError(
                ErrorCode::kInternal, "malformed count reply: " + result.reply().DebugString()));
          }
          const std::int64_t count = result.reply().integer();
          if (count < 0) return done(std::optional<std::int64_t>());
          done(std::optional<std::int64_t>(count));
        });
  });
}

}  // namespace redpacket::store::redis
