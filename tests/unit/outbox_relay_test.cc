// The relay over an in-memory outbox and a bus whose acknowledgements the test controls: handed
// entries are published at once and removed only once acknowledged; what the bus refuses stays;
// what was handed before Start waits for it; the recovery claims what is old, publishes it and
// removes what was acknowledged; nothing is removed that was not acknowledged.
#include "relay/outbox_relay.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <thread>

namespace redpacket::relay {
namespace {

using namespace std::chrono_literals;
using domain::LedgerEvent;
using store::OutboxEntry;

// Holds every publish until the test settles it (acknowledged or refused).
class ControlledBus final : public bus::EventSink {
 public:
  std::uint64_t Append(const LedgerEvent& event, Completion done) override {
    Publish(event, std::move(done), nullptr);
    return 0;
  }
  void Publish(const LedgerEvent& event, Completion done, Failure failed) override {
    std::lock_guard lock(mutex_);
    published.push_back(event);
    pending_.push_back({std::move(done), std::move(failed)});
  }
  void WhenDurable(std::uint64_t, Completion done) override { done(); }
  // Settles the oldest `count` pending publishes.
  void Settle(std::size_t count, bool acknowledge) {
    std::deque<std::pair<Completion, Failure>> now;
    {
      std::lock_guard lock(mutex_);
      for (std::size_t i = 0; i < count && !pending_.empty(); ++i) {
        now.push_back(std::move(pending_.front()));
        pending_.pop_front();
      }
    }
    for (auto& [done, failed] : now) {
      if (acknowledge) {
        done();
      } else if (failed) {
        failed(domain::MakeError(domain::ErrorCode::kUnavailable, "broker away"));
      }
    }
  }
  std::size_t pending() {
    std::lock_guard lock(mutex_);
    return pending_.size();
  }
  std::vector<LedgerEvent> published;

 private:
  std::mutex mutex_;
  std::deque<std::pair<Completion, Failure>> pending_;
};

// The outbox the store would keep: entries by id; Claim returns all of them (the age is the
// store's business, tested on Redis).
class MemoryOutbox final : public store::Outbox {
 public:
  void Record(const OutboxEntry& entry) {
    std::lock_guard lock(mutex_);
    entries_[entry.id] = entry;
  }
  void Remove(Entries entries) override {
    std::lock_guard lock(mutex_);
    for (const auto& entry : entries) {
      entries_.erase(entry.id);
      removed.push_back(entry.id);
    }
  }
  domain::Result<Entries> Claim(std::chrono::milliseconds, std::size_t limit) override {
    std::lock_guard lock(mutex_);
    Entries claimed;
    for (const auto& [id, entry] : entries_) {
      if (claimed.size() == limit) break;
      claimed.push_back(entry);
    }
    return claimed;
  }
  domain::Result<bool> Holds(domain::PacketId packet_id) override {
    std::lock_guard lock(mutex_);
    return std::any_of(entries_.begin(), entries_.end(),
                       [&](const auto& item) { return item.second.event.packet_id == packet_id; });
  }
  std::size_t size() {
    std::lock_guard lock(mutex_);
    return entries_.size();
  }
  std::vector<std::string> removed;

 private:
  std::mutex mutex_;
  std::map<std::string, OutboxEntry> entries_;
};

OutboxEntry Entry(int n) {
  return OutboxEntry{7, "1-" + std::to_string(n),
                     LedgerEvent{LedgerEvent::Type::kGrab, 42, 100 + n, 10 + n, n, 1000}};
}

template <class Predicate>
bool Eventually(Predicate predicate) {
  for (int i = 0; i < 300; ++i) {
    if (predicate()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return predicate();
}

TEST(OutboxRelay, PublishesWhatIsHandedAndRemovesItOnlyOnceAcknowledged) {
  ControlledBus bus;
  MemoryOutbox outbox;
  {
    OutboxRelay relay(bus, RelayOptions{.remove_interval = 1ms});
    relay.Start(outbox);
    for (int n = 1; n <= 3; ++n) {
      outbox.Record(Entry(n));
      relay.Hand(Entry(n));
    }
    ASSERT_EQ(bus.published.size(), 3u) << "published at once, not batched by the relay";
    EXPECT_EQ(relay.stats().in_flight, 3u);
    std::this_thread::sleep_for(20ms);
    EXPECT_EQ(outbox.size(), 3u) << "nothing removed before its acknowledgement";

    bus.Settle(2, true);
    EXPECT_TRUE(Eventually([&] { return outbox.size() == 1; }));
    bus.Settle(1, false);  // the broker refuses the third: it stays for the recovery
    std::this_thread::sleep_for(20ms);
    EXPECT_EQ(outbox.size(), 1u);
    const RelayStats stats = relay.stats();
    EXPECT_EQ(stats.handed, 3u);
    EXPECT_EQ(stats.acknowledged, 2u);
    EXPECT_EQ(stats.failed, 1u);
    EXPECT_EQ(stats.in_flight, 0u);
    relay.Stop();
  }
  EXPECT_EQ(outbox.removed, (std::vector<std::string>{"1-1", "1-2"}));
}

TEST(OutboxRelay, WhatIsHandedBeforeStartWaitsForIt) {
  ControlledBus bus;
  MemoryOutbox outbox;
  OutboxRelay relay(bus, RelayOptions{.remove_interval = 1ms});
  outbox.Record(Entry(1));
  relay.Hand(Entry(1));
  EXPECT_TRUE(bus.published.empty());
  relay.Start(outbox);
  ASSERT_EQ(bus.published.size(), 1u);
  bus.Settle(1, true);
  EXPECT_TRUE(Eventually([&] { return outbox.size() == 0; }));
  relay.Stop();
}

TEST(OutboxRelay, TooManyInFlightLeavesTheRestToTheRecovery) {
  ControlledBus bus;
  MemoryOutbox outbox;
  OutboxRelay relay(bus, RelayOptions{.max_in_flight = 2, .remove_interval = 1ms});
  relay.Start(outbox);
  for (int n = 1; n <= 3; ++n) {
    outbox.Record(Entry(n));
    relay.Hand(Entry(n));
  }
  EXPECT_EQ(bus.published.size(), 2u);
  EXPECT_EQ(relay.stats().dropped, 1u);
  EXPECT_EQ(outbox.size(), 3u) << "dropped from memory only: still in the outbox";
  bus.Settle(2, true);
  relay.Stop();
}

TEST(OutboxRelay, TheRecoveryPublishesWhatWaitsAndRemovesWhatWasAcknowledged) {
  ControlledBus bus;
  MemoryOutbox outbox;
  OutboxRelay relay(bus, RelayOptions{.remove_interval = 1ms, .recovery_wait = 2000ms});
  relay.Start(outbox);
  for (int n = 1; n <= 4; ++n) outbox.Record(Entry(n));  // recorded, never handed (a crash)
  std::thread broker([&] {
    Eventually([&] { return bus.pending() == 4; });
    bus.Settle(3, true);
    bus.Settle(1, false);
  });
  auto recovered = relay.RecoverOnce();
  broker.join();
  ASSERT_TRUE(recovered.ok());
  EXPECT_EQ(recovered->claimed, 4u);
  EXPECT_EQ(recovered->acknowledged, 3u);
  EXPECT_TRUE(Eventually([&] { return outbox.size() == 1; })) << "the refused one stays";
  EXPECT_EQ(relay.stats().recovered, 4u);
  relay.Stop();
}

TEST(OutboxRelay, StopLeavesWhatIsUnacknowledgedInTheOutbox) {
  ControlledBus bus;
  MemoryOutbox outbox;
  OutboxRelay relay(bus, RelayOptions{.remove_interval = 1ms});
  relay.Start(outbox);
  outbox.Record(Entry(1));
  relay.Hand(Entry(1));
  relay.Stop();
  bus.Settle(1, true);  // acknowledged after the stop: removed by a later recovery instead
  EXPECT_EQ(outbox.size(), 1u);
}

}  // namespace
}  // namespace redpacket::relay
