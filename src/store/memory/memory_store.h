// The embedded engine: packets in memory, sharded; each packet has its own lock so a grab on one
// packet never waits on another. Thread-safe. Decided grabs go to an EventSink (the journal) while
// the packet's lock is held, so a packet's events are durable in the order they were decided.
#pragma once

#include <memory>

#include "bus/bus.h"
#include "store/store.h"

namespace redpacket::store {

std::unique_ptr<PacketStore> MakeMemoryStore(bus::EventSink& sink);

}  // namespace redpacket::store
