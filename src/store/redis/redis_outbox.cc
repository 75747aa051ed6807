// RedisStore as the outbox (store/outbox.h): one stream per slot, appended by grab.lua and
// close.lua; entries removed after the bus acknowledged them (outbox_done.lua), claimed by the
// relay's recovery (outbox_claim.lua + WAIT), and searched by packet (outbox_holds.lua).
#include <spdlog/spdlog.h>

#include <array>
#include <map>

#include "net/redis/slot.h"
#include "store/redis/redis_store_impl.h"

namespace redpacket::store::redis {

using domain::ErrorCode;
using net::redis::CommandOptions;
using net::redis::Result;

void RedisStoreImpl::Remove(Outbox::Entries entries) {
  if (entries.empty()) return;
  std::map<int, std::vector<std::string>> by_shard;
  for (OutboxEntry& entry : entries) by_shard[entry.shard].push_back(std::move(entry.id));
  OnIoThread([this, by_shard = std::move(by_shard)](IoSlot& slot) {
    for (const auto& [shard, ids] : by_shard) {
      const std::array<std::string_view, 1> keys{keys_.OutboxOf(shard)};
      const std::vector<std::string_view> args(ids.begin(), ids.end());
      slot.client->Eval(
          outbox_done_, keys, args,
          [this, shard, count = ids.size()](const Result& result) {
            if (!result.ok()) {
              // Claimed and published again later: the ledger applies each event once.
              spdlog::warn("outbox: removing {} entries of slot {} failed: {}", count, shard,
                           result.error().ToString());
              return;
            }
            if (result.reply().IsInteger()) {
              outbox_removed_.fetch_add(static_cast<std::uint64_t>(result.reply().integer()),
                                        std::memory_order_relaxed);
            }
          },
          CommandOptions{.idempotent = true});
    }
  });
}

// Two passes, so that an idle outbox costs one cheap read: XRANGE ... COUNT 1 on every slot's
// stream (16384 pipelined reads, whatever the number of packets), then the claim script, with
// its WAIT, only on the slots that hold an old entry.
domain::Result<Outbox::Entries> RedisStoreImpl::Claim(std::chrono::milliseconds min_age,
                                                      std::size_t limit) {
  // Not the injected clock: the stream ids are Redis's wall clock (XADD *), so the system's.
  const std::int64_t max_ms = domain::ToUnixMillis(domain::Clock::now()) - min_age.count();
  if (max_ms <= 0 || limit == 0) return Outbox::Entries{};
  const std::string max_id = std::to_string(max_ms);
  struct State {
    std::size_t pending = 0;
    std::vector<int> busy;  // slots with an entry older than max_id
    std::optional<domain::Error> error;
    Outbox::Entries entries;
  };
  auto busy = Blocking<std::vector<int>>("outbox scan", [this, max_id](IoSlot& slot, auto finish) {
    auto state = std::make_shared<State>();
    state->pending = net::redis::kSlotCount;
    for (int shard = 0; shard < net::redis::kSlotCount; ++shard) {
      const std::string& key = keys_.OutboxOf(shard);
      slot.client->Execute(
          key, {"XRANGE", key, "-", max_id, "COUNT", "1"},
          [state, shard, finish](const Result& result) {
            if (!result.ok()) {
              if (!state->error) state->error = StatusFromRedisError(result.error()).error();
            } else if (result.reply().IsArray() && !result.reply().array().empty()) {
              state->busy.push_back(shard);
            }
            if (--state->pending != 0) return;
            if (state->error) return finish(*state->error);
            finish(std::move(state->busy));
          },
          CommandOptions{.idempotent = true});
    }
  });
  if (!busy) return busy.error();
  if (busy->empty()) return Outbox::Entries{};
  const std::string count = std::to_string(limit);
  auto claimed = Blocking<Outbox::Entries>(
      "outbox claim", [this, shards = std::move(*busy), max_id, count](IoSlot& slot, auto finish) {
        auto state = std::make_shared<State>();
        state->pending = shards.size();
        for (int shard : shards) {
          const std::string outbox = keys_.OutboxOf(shard);
          const std::string claims = keys_.ClaimsOf(shard);
          const std::array<std::string_view, 2> keys{outbox, claims};
          const std::array<std::string_view, 2> args{max_id, count};
          EvalDurable(slot, outbox_claim_, keys, args, options_.client.command_timeout,
                      [state, shard, finish](const Result& result) {
                        if (!result.ok()) {
                          if (!state->error) {
                            state->error = StatusFromRedisError(result.error()).error();
                          }
                        } else {
                          auto entries = ParseOutboxEntries(result.reply(), shard);
                          if (!entries) {
                            if (!state->error) state->error = entries.error();
                          } else {
                            for (auto& entry : *entries) state->entries.push_back(std::move(entry));
                          }
                        }
                        if (--state->pending != 0) return;
                        if (state->error) return finish(*state->error);
                        finish(std::move(state->entries));
                      });
        }
      });
  if (!claimed) return claimed.error();
  if (claimed->size() > limit) claimed->resize(limit);
  outbox_claimed_.fetch_add(claimed->size(), std::memory_order_relaxed);
  return claimed;
}

domain::Result<bool> RedisStoreImpl::Holds(PacketId packet_id) {
  const std::string outbox = keys_.OutboxOf(keys_.SlotOf(packet_id));
  const std::string packet = std::to_string(packet_id);
  return Blocking<bool>("outbox lookup", [this, outbox, packet](IoSlot& slot, auto finish) {
    const std::array<std::string_view, 1> keys{outbox};
    const std::array<std::string_view, 1> args{packet};
    slot.client->Eval(
        outbox_holds_, keys, args,
        [finish](const Result& result) {
          if (!result.ok()) return finish(StatusFromRedisError(result.error()).error());
          if (!result.reply().IsInteger()) {
            return finish(domain::MakeError(
                ErrorCode::kInternal, "malformed outbox reply: " + result.reply().DebugString()));
          }
          finish(result.reply().integer() != 0);
        },
        CommandOptions{.idempotent = true});
  });
}

}  // namespace redpacket::store::redis
