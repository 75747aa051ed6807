// The PacketStore conformance suite (tests/store/store_conformance.h) on the memory store: a unit
// test, so it runs on every build, under the sanitizers too; the same cases run on RedisStore in
// tests/redis/store_conformance_redistest.cc.
#include "tests/store/store_conformance.h"

namespace redpacket::store {
namespace {

INSTANTIATE_TYPED_TEST_SUITE_P(Memory, StoreConformanceTest, ::testing::Types<MemoryStoreUnderTest>,
                               StoreName);

}  // namespace
}  // namespace redpacket::store
