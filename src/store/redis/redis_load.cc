// RedisStore: loading a packet (create.lua, then append.lua chunks, the Bloom bits first and the
// expiry registration last) and reserving a lost one before the loader restores it.
#include <spdlog/spdlog.h>

#include <array>
#include <charconv>

#include "store/redis/redis_store_impl.h"

namespace redpacket::store::redis {

using domain::ErrorCode;
using net::redis::Result;

struct RedisStoreImpl::AddJob {
  domain::PacketRecord record;
  PacketKeys keys;
  std::int64_t shares_to_load = 0;  // record.shares after the recovered grabs
  std::int64_t grabs_to_load = 0;
  PacketStore::StatusCallback done;
};

namespace {

bool ParseDecimal(const std::string& text, PacketId* value) {
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), *value);
  return error == std::errc() && end == text.data() + text.size();
}

}  // namespace

std::int64_t RedisStoreImpl::KeysExpireAtMs(TimePoint expires_at) const {
  // Never in the past, even for a recovered packet long expired: its keys must live until the
  // sweeper has closed it and recorded its refund.
  return std::max(domain::ToUnixMillis(expires_at), domain::ToUnixMillis(options_.clock->Now())) +
         options_.key_grace.count();
}

void RedisStoreImpl::Add(const domain::PacketRecord& packet, PacketStore::StatusCallback done) {
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
void RedisStoreImpl::AddBloomBits(IoSlot& slot, const std::shared_ptr<AddJob>& job) {
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

void RedisStoreImpl::CreatePacketKeys(IoSlot& slot, const std::shared_ptr<AddJob>& job) {
  const domain::PacketRecord& record = job->record;
  Arguments args;
  args.values = {std::to_string(record.spec.sender_id),
                 std::to_string(record.spec.total_cents),
                 std::to_string(record.spec.count),
                 domain::ToString(record.spec.kind),
                 record.spec.greeting,
                 record.spec.receiver_id ? std::to_string(*record.spec.receiver_id) : "",
                 std::to_string(domain::ToUnixMillis(record.created_at)),
                 std::to_string(domain::ToUnixMillis(record.expires_at)),
                 std::to_string(KeysExpireAtMs(record.expires_at)),
                 std::to_string(job->shares_to_load),
                 std::to_string(job->grabs_to_load)};
  AppendShares(job, 0, &args);
  RunLoadScript(slot, job, create_, args);
}

// Adds the shares [offset, offset + chunk) still to load (after the recovered grabs).
void RedisStoreImpl::AppendShares(const std::shared_ptr<AddJob>& job, std::int64_t offset,
                                  Arguments* args) {
  const auto first = static_cast<std::size_t>(job->grabs_to_load + offset);
  const auto end = std::min(job->record.shares.size(), first + options_.load_chunk);
  for (std::size_t i = first; i < end; ++i) {
    args->values.push_back(std::to_string(job->record.shares[i]));
  }
}

void RedisStoreImpl::RunLoadScript(IoSlot& slot, const std::shared_ptr<AddJob>& job,
                                   const net::redis::Script& script, const Arguments& args) {
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

// Resumes from what Redis says is loaded, so a retried Add (or a retried chunk) continues where
// the last one stopped instead of pushing a share twice.
void RedisStoreImpl::ContinueLoad(IoSlot& slot, const std::shared_ptr<AddJob>& job,
                                  const LoadReply& state) {
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
    return job->done(
        domain::MakeError(ErrorCode::kInternal, "packet " + std::to_string(job->record.packet_id) +
                                                    " is loading although everything is loaded"));
  }
  RunLoadScript(slot, job, append_, args);
}

// Last: a packet is registered for the sweeper only once its keys exist (a close before that
// would find nothing). Finished packets need no sweeping.
void RedisStoreImpl::RegisterExpiry(IoSlot& slot, const std::shared_ptr<AddJob>& job,
                                    const std::string& status) {
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

domain::Result<Reservation> RedisStoreImpl::Reserve(PacketId packet_id, TimePoint expires_at) {
  const PacketKeys keys = keys_.ForPacket(packet_id);
  const std::string expire_at = std::to_string(KeysExpireAtMs(expires_at));
  return Blocking<Reservation>("reserve", [this, keys, expire_at](IoSlot& slot, auto finish) {
    const std::array<std::string_view, 1> key_views{keys.meta};
    const std::array<std::string_view, 1> args{expire_at};
    EvalDurable(
        slot, reserve_, key_views, args, options_.client.command_timeout,
        [finish](const Result& result) {
          if (!result.ok()) return finish(StatusFromRedisError(result.error()).error());
          if (!result.reply().IsString()) {
            return finish(domain::MakeError(
                ErrorCode::kInternal, "malformed reserve reply: " + result.reply().DebugString()));
          }
          const std::string& status = result.reply().string();
          if (status == "reserved") return finish(Reservation::kReserved);
          if (status == "loading") return finish(Reservation::kLoading);
          finish(Reservation::kHeld);
        });
  });
}

void RedisStoreImpl::ReportLost(PacketId packet_id) {
  OnIoThread([this, packet_id](IoSlot& slot) {
    const std::string& key = keys_.lost();
    const std::string member = std::to_string(packet_id);
    slot.client->Execute(
        key, {"SADD", key, member},
        [packet_id](const Result& result) {
          if (!result.ok()) {
            spdlog::warn("cannot report packet {} lost: {}", packet_id, result.error().ToString());
          }
        },
        net::redis::CommandOptions{.idempotent = true});
  });
}

domain::Result<std::vector<PacketId>> RedisStoreImpl::TakeLost(std::size_t limit) {
  const std::string count = std::to_string(limit);
  return Blocking<std::vector<PacketId>>("take lost", [this, count](IoSlot& slot, auto finish) {
    const std::string& key = keys_.lost();
    slot.client->Execute(
        key, {"SPOP", key, count},
        [finish](const Result& result) {
          if (!result.ok()) return finish(StatusFromRedisError(result.error()).error());
          std::vector<PacketId> ids;
          if (result.reply().IsArray()) {
            for (const auto& member : result.reply().array()) {
              PacketId id = 0;
              if (member.IsString() && ParseDecimal(member.string(), &id)) ids.push_back(id);
            }
          }
          finish(std::move(ids));
        },
        net::redis::CommandOptions{.idempotent = false});
  });
}

domain::Status RedisStoreImpl::Unregister(PacketId packet_id) {
  const PacketKeys keys = keys_.ForPacket(packet_id);
  const std::string member = std::to_string(packet_id);
  auto done = Blocking<bool>("unregister", [this, keys, member](IoSlot& slot, auto finish) {
    const std::array<std::string_view, 1> meta{keys.meta};
    EvalDurable(slot, release_, meta, {}, options_.client.command_timeout,
                [this, &slot, member, finish](const Result& released) {
                  if (!released.ok()) return finish(StatusFromRedisError(released.error()).error());
                  const std::string& key = keys_.expiry();
                  slot.client->Execute(
                      key, {"ZREM", key, member},
                      [finish](const Result& result) {
                        if (!result.ok()) {
                          return finish(StatusFromRedisError(result.error()).error());
                        }
                        finish(true);
                      },
                      net::redis::CommandOptions{.idempotent = true});
                });
  });
  if (!done) return done.error();
  return {};
}

}  // namespace redpacket::store::redis
