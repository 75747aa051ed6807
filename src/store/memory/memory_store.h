// The embedded engine: packets in memory, sharded; each packet has its own lock so a grab on one
// packet never waits on another. Thread-safe. Decided grabs go to an EventSink (the journal) while
// the packet's lock is held, so a packet's events are durable in the order they were decided.
// While the sink cannot write (the journal's disk is full), a new grab is refused with 503 before
// it takes a share, and one decided just before hears 503 instead of waiting for room.
#pragma once

#include <memory>

#include "bus/bus.h"
#include "domain/clock.h"
#include "store/store.h"

namespace redpacket::store {

// `clock` (which must outlive the store) dates finished packets and tells an open packet past its
// expiry in a snapshot; grabs and sweeps are handed their "now" by the caller.
std::unique_ptr<PacketStore> MakeMemoryStore(
    bus::EventSink& sink, const domain::TimeSource& clock = domain::SystemTime());

}  // namespace redpacket::store
