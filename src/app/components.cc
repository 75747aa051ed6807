// ComponentList: start in order, stop and destroy in reverse.
#include "app/components.h"

#include <spdlog/spdlog.h>

namespace redpacket::app {

ComponentList::~ComponentList() {
  StopAll();
  while (!components_.empty()) components_.pop_back();
}

void ComponentList::StartAll() {
  for (; started_ < components_.size(); ++started_) {
    Component& component = *components_[started_];
    try {
      spdlog::debug("starting {}", component.name());
      component.Start();
    } catch (...) {
      spdlog::debug("{} failed to start; stopping what started", component.name());
      StopAll();
      throw;
    }
  }
}

void ComponentList::StopAll() {
  while (started_ > 0) {
    Component& component = *components_[--started_];
    spdlog::debug("stopping {}", component.name());
    component.Stop();
  }
}

}  // namespace redpacket::app
