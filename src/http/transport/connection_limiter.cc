// ConnectionLimiter and AddressKey.
#include "http/transport/connection_limiter.h"

namespace redpacket::http {

std::uint64_t AddressKey(const boost::asio::ip::address& address) {
  constexpr std::uint64_t kAddressBit = std::uint64_t{1} << 63;
  if (address.is_v4()) return kAddressBit | address.to_v4().to_uint();
  const auto v6 = address.to_v6();
  if (v6.is_v4_mapped()) {
    return kAddressBit | boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, v6).to_uint();
  }
  // FNV-1a over the 16 bytes, kept clear of the IPv4 keys' range (bit 32 set).
  std::uint64_t hash = 0xcbf29ce484222325ULL;
  for (unsigned char byte : v6.to_bytes()) hash = (hash ^ byte) * 0x100000001b3ULL;
  return kAddressBit | (std::uint64_t{1} << 32) |
         (hash & ~(kAddressBit | (std::uint64_t{1} << 32)));
}

ConnectionLimiter::Verdict ConnectionLimiter::TryAdmit(std::uint64_t address_key) {
  // Count first, then check: two threads accepting at once cannot both take the last place.
  if (max_connections_ > 0 && open_.fetch_add(1, std::memory_order_relaxed) >= max_connections_) {
    open_.fetch_sub(1, std::memory_order_relaxed);
    return Verdict::kServerFull;
  }
  if (max_connections_ == 0) open_.fetch_add(1, std::memory_order_relaxed);
  if (max_per_address_ > 0) {
    std::lock_guard lock(mutex_);
    std::size_t& count = per_address_[address_key];
    if (count >= max_per_address_) {
      open_.fetch_sub(1, std::memory_order_relaxed);
      return Verdict::kAddressFull;
    }
    ++count;
  }
  return Verdict::kAdmitted;
}

void ConnectionLimiter::Release(std::uint64_t address_key) {
  open_.fetch_sub(1, std::memory_order_relaxed);
  if (max_per_address_ == 0) return;
  std::lock_guard lock(mutex_);
  auto it = per_address_.find(address_key);
  if (it != per_address_.end() && --it->second == 0) per_address_.erase(it);
}

}  // namespace redpacket::http
