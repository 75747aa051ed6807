// What every store's tests share, with no Redis: the StoreUnderTest interface, the memory store
// under test, a sink whose events are durable at once, and blocking helpers. The Redis store's
// tests add theirs in tests/redis/store_test_support.h. Test code: blocking, one test thread.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "bus/bus.h"
#include "domain/packet.h"
#include "store/memory/memory_store.h"
#include "store/store.h"

namespace redpacket::store {

using namespace std::chrono_literals;
using domain::ErrorCode;
using domain::LedgerEvent;

// Every event is durable at once; completions run on the sink's own thread, as with the journal
// or Kafka (never inside Append: the memory store appends under a packet's lock).
class AutoDurableSink final : public bus::EventSink {
 public:
  AutoDurableSink() : thread_([this] { Run(); }) {}
  ~AutoDurableSink() override {
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
    }
    wake_.notify_all();
    thread_.join();
  }

  std::uint64_t Append(const LedgerEvent& event, Completion done) override {
    std::lock_guard lock(mutex_);
    events_.push_back(event);
    queue_.push_back(std::move(done));
    wake_.notify_all();
    return events_.size();
  }
  void WhenDurable(std::uint64_t /*position*/, Completion done) override {
    std::lock_guard lock(mutex_);
    queue_.push_back(std::move(done));
    wake_.notify_all();
  }

  std::vector<LedgerEvent> events() {
    std::lock_guard lock(mutex_);
    return events_;
  }
  std::vector<LedgerEvent> events(LedgerEvent::Type type) {
    std::vector<LedgerEvent> matching;
    for (const auto& event : events()) {
      if (event.type == type) matching.push_back(event);
    }
    return matching;
  }

 private:
  void Run() {
    std::unique_lock lock(mutex_);
    while (true) {
      wake_.wait(lock, [&] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;
      Completion done = std::move(queue_.front());
      queue_.pop_front();
      lock.unlock();
      done();
      lock.lock();
    }
  }

  std::mutex mutex_;
  std::condition_variable wake_;
  bool stop_ = false;
  std::vector<LedgerEvent> events_;
  std::deque<Completion> queue_;
  std::thread thread_;
};

// A store with what it runs on. The sink is a base member: built first, destroyed last.
class StoreUnderTest {
 public:
  virtual ~StoreUnderTest() = default;
  virtual PacketStore& store() = 0;
  // Runs `work` where a server thread would issue calls: the Redis store's i-th I/O thread (its
  // own client, no hop), or right here for the memory store (it has no threads).
  virtual void Submit(int worker, std::function<void()> work) = 0;
  domain::PacketId NewPacketId() { return next_packet_id_++; }

  AutoDurableSink sink;

 private:
  domain::PacketId next_packet_id_ = 1;
};

class MemoryStoreUnderTest final : public StoreUnderTest {
 public:
  static constexpr const char* kName = "Memory";
  MemoryStoreUnderTest() : store_(MakeMemoryStore(sink)) {}
  PacketStore& store() override { return *store_; }
  void Submit(int /*worker*/, std::function<void()> work) override { work(); }

 private:
  std::unique_ptr<PacketStore> store_;
};

// --- blocking helpers ---

template <class T>
inline T Await(std::future<T> future, const char* what) {
  if (future.wait_for(20s) != std::future_status::ready) {
    ADD_FAILURE() << what << ": no answer within 20 s";
    std::abort();  // the callback may still come and write into a dead promise
  }
  return future.get();
}

inline domain::Status AddNow(StoreUnderTest& under_test, const domain::PacketRecord& packet) {
  std::promise<domain::Status> added;
  under_test.store().Add(packet,
                         [&](domain::Status status) { added.set_value(std::move(status)); });
  return Await(added.get_future(), "Add");
}

inline GrabResult GrabNow(StoreUnderTest& under_test, domain::PacketId packet_id,
                          domain::UserId user_id, domain::TimePoint now = domain::Clock::now()) {
  std::promise<GrabResult> grabbed;
  under_test.store().Grab(packet_id, user_id, now,
                          [&](GrabResult result) { grabbed.set_value(std::move(result)); });
  return Await(grabbed.get_future(), "Grab");
}

inline std::optional<PacketSnapshot> SnapshotNow(StoreUnderTest& under_test,
                                                 domain::PacketId packet_id) {
  std::promise<std::optional<PacketSnapshot>> taken;
  under_test.store().Snapshot(packet_id, [&](std::optional<PacketSnapshot> snapshot) {
    taken.set_value(std::move(snapshot));
  });
  return Await(taken.get_future(), "Snapshot");
}

inline domain::PacketRecord MakePacket(domain::PacketId id, std::vector<domain::Cents> shares,
                                       std::chrono::seconds expires_in = 3600s) {
  domain::PacketRecord packet;
  packet.packet_id = id;
  packet.spec.sender_id = 1;
  packet.spec.count = static_cast<std::int64_t>(shares.size());
  for (auto share : shares) packet.spec.total_cents += share;
  packet.spec.greeting = "恭喜发财";
  packet.spec.expires_in_s = expires_in.count();
  packet.created_at = domain::Clock::now();
  packet.expires_at = packet.created_at + expires_in;
  packet.shares = std::move(shares);
  return packet;
}

}  // namespace redpacket::store
