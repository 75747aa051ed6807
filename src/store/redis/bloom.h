// Sizing and bit positions of the Bloom filter of existing packet ids (the cache-penetration
// guard). Pure functions: no I/O, safe from any thread.
//
// For n ids and a target false-positive rate p, the optimal filter has
//   m = ceil(-n * ln(p) / (ln 2)^2) bits and k = round(m / n * ln 2) hash functions,
// and with k hash functions over m bits, after n insertions a random absent id is reported
// present with probability (1 - e^(-k*n/m))^k. Defaults (redis_store.h): n = 10,000,000,
// p = 0.001 -> m = 143,775,876 bits (17.1 MiB), k = 10, rate at capacity 0.100%; with half as
// many ids it falls to 0.0005%, with twice as many it rises to 5.7% (the filter only grows:
// size the capacity for every id ever created within the keys' lifetime, not for open packets).
#pragma once

#include <cstdint>
#include <vector>

#include "domain/types.h"

namespace redpacket::store::redis {

struct BloomParameters {
  std::uint64_t bits = 0;  // m, at most 2^32 (the largest Redis string is 512 MiB)
  int hashes = 0;          // k
};

// Throws std::invalid_argument when capacity is 0, p is not in (0, 1) or m exceeds 2^32.
BloomParameters SizeBloomFilter(std::uint64_t capacity, double false_positive_rate);

// (1 - e^(-k*n/m))^k.
double BloomFalsePositiveRate(const BloomParameters& parameters, std::uint64_t items);

// The k bit offsets of an id, by double hashing (Kirsch & Mitzenmacher: h1 + i*h2 mod m gives
// the same false-positive rate as k independent hashes), h1 and h2 from splitmix64 of the id.
std::vector<std::uint64_t> BloomBitOffsets(domain::PacketId packet_id,
                                           const BloomParameters& parameters);

}  // namespace redpacket::store::redis
