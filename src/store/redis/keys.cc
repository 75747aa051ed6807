// Key naming of the cluster hot path (see keys.h).
#include "store/redis/keys.h"

#include <stdexcept>

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
}

PacketKeys KeySpace::ForPacket(domain::PacketId packet_id) const {
  const std::string tag = "{" + prefix_ + ":" + std::to_string(packet_id) + "}";
  return {tag + ":meta", tag + ":shares", tag + ":grabs"};
}

}  // namespace redpacket::store::redis
