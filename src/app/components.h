// The serve command's parts, each a Component, in one list that owns their start and stop order
// (as userver's component system does): started in the order they were added, stopped in the
// reverse order, then destroyed in the reverse order. A part whose life does not fit one place
// in the list is two entries (the HTTP server binds early and drains late: "http server" and
// "http drain"). Not thread-safe: drive it from the main thread.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace redpacket::app {

class Component {
 public:
  virtual ~Component() = default;
  virtual std::string name() const = 0;
  // Blocking. Throws std::runtime_error with a clear message when it cannot start (startup
  // error).
  virtual void Start() {}
  // Blocking; never throws. Called only after Start() returned.
  virtual void Stop() {}
};

// A step of the list made of two functions: for what the app wires around another part (a
// journal attached to the server's loop, the server's drain) rather than an object of its own.
class Step final : public Component {
 public:
  Step(std::string name, std::function<void()> start, std::function<void()> stop = {})
      : name_(std::move(name)), start_(std::move(start)), stop_(std::move(stop)) {}
  std::string name() const override { return name_; }
  void Start() override {
    if (start_) start_();
  }
  void Stop() override {
    if (stop_) stop_();
  }

 private:
  std::string name_;
  std::function<void()> start_;
  std::function<void()> stop_;
};

// An object with Start() and Stop() of its own (a Sweeper...), owned by the list.
template <class T>
class Owned final : public Component {
 public:
  Owned(std::string name, std::unique_ptr<T> object)
      : name_(std::move(name)), object_(std::move(object)) {}
  std::string name() const override { return name_; }
  void Start() override { object_->Start(); }
  void Stop() override { object_->Stop(); }
  T& get() { return *object_; }

 private:
  std::string name_;
  std::unique_ptr<T> object_;
};

class ComponentList {
 public:
  ComponentList() = default;
  ~ComponentList();  // StopAll(), then each component is destroyed, last added first
  ComponentList(const ComponentList&) = delete;
  ComponentList& operator=(const ComponentList&) = delete;

  // Appends `component` (the start order is the order of Add); returns it.
  template <class T>
  T& Add(std::unique_ptr<T> component) {
    T& added = *component;
    components_.push_back(std::move(component));
    return added;
  }
  // Starts each in order. When one throws, those already started are stopped (in reverse) and
  // the exception goes on.
  void StartAll();
  // Stops every started component, last started first. Idempotent.
  void StopAll();

 private:
  std::vector<std::unique_ptr<Component>> components_;
  std::size_t started_ = 0;
};

}  // namespace redpacket::app
