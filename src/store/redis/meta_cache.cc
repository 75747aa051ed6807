// The per-thread packet metadata cache (see meta_cache.h).
#include "store/redis/meta_cache.h"

#include <stdexcept>

namespace redpacket::store::redis {

MetaCache::MetaCache(std::chrono::milliseconds ttl, std::chrono::milliseconds jitter,
                     std::size_t max_entries)
    : ttl_(ttl), jitter_(jitter), max_entries_(max_entries) {
  if (ttl.count() < 0 || jitter.count() < 0 || jitter > ttl || max_entries == 0) {
    throw std::invalid_argument("metadata cache: need 0 <= jitter <= ttl and max_entries > 0");
  }
}

const PacketMeta* MetaCache::Find(domain::PacketId packet_id, Time now) {
  auto it = entries_.find(packet_id);
  if (it == entries_.end()) return nullptr;
  if (now >= it->second.expires_at) {
    entries_.erase(it);
    return nullptr;
  }
  return &it->second.meta;
}

void MetaCache::Insert(domain::PacketId packet_id, PacketMeta meta, Time now,
                       domain::RandomSource& random) {
  if (ttl_.count() == 0) return;  // caching disabled
  if (!entries_.contains(packet_id) && entries_.size() >= max_entries_) MakeRoom(now);
  entries_.insert_or_assign(packet_id, Entry{std::move(meta), now + DrawTtl(random)});
}

std::chrono::milliseconds MetaCache::DrawTtl(domain::RandomSource& random) const {
  return std::chrono::milliseconds(
      random.Between(ttl_.count() - jitter_.count(), ttl_.count() + jitter_.count()));
}

// Full: drop every expired entry; if none was, drop one arbitrary entry. The metadata is
// immutable, so what is dropped is only a lost shortcut, never a wrong answer.
void MetaCache::MakeRoom(Time now) {
  std::erase_if(entries_, [now](const auto& entry) { return now >= entry.second.expires_at; });
  if (entries_.size() >= max_entries_) entries_.erase(entries_.begin());
}

}  // namespace redpacket::store::redis
