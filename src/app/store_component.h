// The hot-path store as a component: it is the PacketStore the service is handed, and it makes
// its engine at Start(), when that can be made (the memory store needs the started journal; the
// Redis store runs on the server's I/O loops, which exist once the server has started). Every
// call forwards to the engine; none may come before Start() (the service starts after it).
// Stop() does nothing: the engine is destroyed with the component list, after the loops stopped.
// Thread-safe as its engine.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>

#include "app/components.h"
#include "store/store.h"

namespace redpacket::app {

template <class Engine>
class StoreComponent final : public Component, public store::PacketStore {
 public:
  using Maker = std::function<std::unique_ptr<Engine>()>;
  StoreComponent(std::string name, Maker make) : name_(std::move(name)), make_(std::move(make)) {}

  std::string name() const override { return name_; }
  // Blocking: makes the engine (a maker may throw std::runtime_error: a startup error).
  void Start() override {
    engine_ = make_();
    live_.store(engine_.get());
  }
  // The engine itself, for what needs more than a PacketStore (valid after Start()).
  Engine& engine() {
    if (!engine_) throw std::logic_error(name_ + " used before it started");
    return *engine_;
  }

  void Add(const domain::PacketRecord& packet, StatusCallback done) override {
    engine().Add(packet, std::move(done));
  }
  void Grab(domain::PacketId packet_id, domain::UserId user_id, domain::TimePoint now,
            GrabCallback done) override {
    engine().Grab(packet_id, user_id, now, std::move(done));
  }
  void Snapshot(domain::PacketId packet_id, SnapshotCallback done) override {
    engine().Snapshot(packet_id, std::move(done));
  }
  void CountGrabs(domain::PacketId packet_id, CountCallback done) override {
    engine().CountGrabs(packet_id, std::move(done));
  }
  store::SweepStats Sweep(domain::TimePoint now, std::uint64_t applied_position,
                          std::chrono::milliseconds retention) override {
    return engine().Sweep(now, applied_position, retention);
  }
  // Any thread, any time (a metric): 0 before Start().
  std::size_t size() const override {
    const Engine* engine = live_.load();
    return engine != nullptr ? engine->size() : 0;
  }
  void CheckHealth(StatusCallback done) override { engine().CheckHealth(std::move(done)); }
  void ReportLost(domain::PacketId packet_id) override { engine().ReportLost(packet_id); }

 private:
  std::string name_;
  Maker make_;
  std::unique_ptr<Engine> engine_;
  std::atomic<Engine*> live_{nullptr};  // engine_, for size()
};

}  // namespace redpacket::app
