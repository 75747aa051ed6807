// Key naming of the cluster hot path (see keys.h).
#include "store/redis/keys.h"

#include <stdexcept>

#include "net/redis/slot.h"

namespace redpacket::store::redis {

KeySpace::KeySpace(std::string prefix) : prefix_(std::move(prefix)) {
  if (prefix_.empty() || prefix_.find_first_of("{}") != std::string::npos) {
    throw std::invalid_argument("Redis key prefix must be non-empty and free of '{' and '}': '" +
                                prefix_ + "'");
  }
  bloom_ = "{" + prefix_ + ":bloom}";
  bloom_parameters_ = bloom_ + ":params";
  expiry_ = "{" + prefix_ + ":expiry}";
  expiry_fence_ = expiry_ + ":fence";
  lost_ = "{" + prefix_ + ":lost}";
  // About 170,000 tags hashed (the coupon collector's n ln n) to cover every slot: a few ms.
  outboxes_.resize(net::redis::kSlotCount);
  int missing = net::redis::kSlotCount;
  for (std::uint64_t n = 0; missing > 0; ++n) {
    std::string tag = prefix_ + ":o" + std::to_string(n);
    std::string& outbox = outboxes_[static_cast<std::size_t>(net::redis::KeySlot(tag))];
    if (!outbox.empty()) continue;
    outbox = "{" + tag + "}:outbox";
    --missing;
  }
}

int KeySpace::SlotOf(domain::PacketId packet_id) const {
  return net::redis::KeySlot(prefix_ + ":" + std::to_string(packet_id));
}

PacketKeys KeySpace::ForPacket(domain::PacketId packet_id) const {
  const std::string tag = "{" + prefix_ + ":" + std::to_string(packet_id) + "}";
  return {tag + ":meta", tag + ":shares", tag + ":grabs"};
}

}  // namespace redpacket::store::redis
