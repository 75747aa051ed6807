// RedisStore: expiry. The sweeper reads expired ids from {rp:expiry} (fenced by its lease token),
// closes each packet with close.lua (which records the refund in the slot's outbox in the same
// step), and unregisters it once that is replicated. A packet whose keys are missing stays
// registered and is reported lost: its refund waits for the loader to restore it.
#include <spdlog/spdlog.h>

#include <array>
#include <charconv>
#include <condition_variable>

#include "store/redis/redis_store_impl.h"

namespace redpacket::store::redis {

using net::redis::CommandOptions;
using net::redis::Reply;
using net::redis::Result;

struct RedisStoreImpl::SweepRun {
  std::mutex mutex;
  std::condition_variable finished_signal;
  bool finished = false;
  SweepStats stats;
  std::int64_t now_ms = 0;
  std::size_t pending = 0;  // closes of the current batch not yet settled
  std::size_t removed = 0;  // ids of the current batch dropped from {rp:expiry}
  std::size_t batch_size = 0;
  std::optional<std::uint64_t> fencing_token;  // a fenced sweep: checked at every batch
  std::optional<std::uint64_t> fenced_by;      // refused: the higher token seen in Redis
};

domain::Result<SweepStats> RedisStoreImpl::FencedSweep(TimePoint now, std::uint64_t fencing_token) {
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

SweepStats RedisStoreImpl::Sweep(TimePoint now) { return Sweep(now, std::make_shared<SweepRun>()); }

SweepStats RedisStoreImpl::Sweep(TimePoint now, std::shared_ptr<SweepRun> run) {
  if (CurrentSlot() != nullptr) {
    spdlog::error("RedisStore::Sweep called on an I/O thread; it blocks, so it did nothing");
    return {};
  }
  run->now_ms = domain::ToUnixMillis(now);
  IoSlot& slot = *slots_.front();
  RunOn(slot, [this, &slot, run] { SweepBatch(slot, run); });
  std::unique_lock lock(run->mutex);
  if (!run->finished_signal.wait_for(lock, options_.sweep_timeout, [&] { return run->finished; })) {
    spdlog::warn("sweep: not finished after {} ms; the rest continues in the background",
                 options_.sweep_timeout.count());
  }
  return run->stats;
}

void RedisStoreImpl::SweepBatch(IoSlot& slot, const std::shared_ptr<SweepRun>& run) {
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
    for (PacketId id : ids) ClosePacket(slot, run, id);
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

// The refund is recorded by the close itself (in the outbox, behind the packet's grabs) and is
// replicated when the callback runs: only then is the packet unregistered and the refund handed
// to the relay. A close that fails leaves the packet registered; the next sweep closes it, or
// finds it closed ('already') and unregisters it, and the refund was recorded exactly once.
void RedisStoreImpl::ClosePacket(IoSlot& slot, const std::shared_ptr<SweepRun>& run,
                                 PacketId packet_id) {
  const PacketKeys keys = keys_.ForPacket(packet_id);
  const int shard = keys_.SlotOf(packet_id);
  const std::array<std::string_view, 4> key_views{keys.meta, keys.shares, keys.grabs,
                                                  keys_.OutboxOf(shard)};
  const std::string now_text = std::to_string(run->now_ms);
  const std::string packet_text = std::to_string(packet_id);
  const std::array<std::string_view, 2> args{now_text, packet_text};
  EvalDurable(
      slot, close_, key_views, args, options_.client.command_timeout,
      [this, &slot, run, packet_id, shard](const Result& result) {
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
            if (!reply->outbox_id.empty()) {
              refunds_recorded_.fetch_add(1, std::memory_order_relaxed);
              Recorded({shard, reply->outbox_id,
                        domain::LedgerEvent::Refund(packet_id, reply->sender_id,
                                                    reply->refund_cents, reply->closed_ms)});
            }
            return Unregister(slot, run, packet_id);
          case Outcome::kAlready:
          case Outcome::kExhausted:
            return Unregister(slot, run, packet_id);
          case Outcome::kUnknown:
            // Registered, so created and loaded once, and its keys are gone: lost. It stays
            // registered; the loader restores it from the ledger, then a sweep closes it.
            {
              std::lock_guard lock(run->mutex);
              run->stats.lost.push_back(packet_id);
            }
            return SettleOne(slot, run, false);
          case Outcome::kOpen:
          case Outcome::kLoading:
            return SettleOne(slot, run, false);
        }
      });
}

void RedisStoreImpl::Unregister(IoSlot& slot, const std::shared_ptr<SweepRun>& run,
                                PacketId packet_id) {
  const std::string& key = keys_.expiry();
  const std::string member = std::to_string(packet_id);
  slot.client->Execute(
      key, {"ZREM", key, member},
      [this, &slot, run](const Result& result) { SettleOne(slot, run, result.ok()); },
      CommandOptions{.idempotent = true});
}

// One id of the batch is done; the last one starts the next batch or ends the sweep. A next
// batch only when this one was full and made progress (ids still loading or lost stay
// registered and must not make the sweep spin).
void RedisStoreImpl::SettleOne(IoSlot& slot, const std::shared_ptr<SweepRun>& run, bool removed) {
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

void RedisStoreImpl::FinishSweep(IoSlot& slot, const std::shared_ptr<SweepRun>& run) {
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

}  // namespace redpacket::store::redis
