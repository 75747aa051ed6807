// The local journal seen as the service's EventSink.
#pragma once

#include "bus/bus.h"
#include "bus/local/journal.h"

namespace redpacket::bus {

class JournalSink final : public EventSink {
 public:
  explicit JournalSink(Journal& journal) : journal_(journal) {}
  std::uint64_t Append(const domain::LedgerEvent& event, Completion done) override {
    return journal_.Append(event, std::move(done));
  }
  void WhenDurable(std::uint64_t position, Completion done) override {
    journal_.WhenDurable(position, std::move(done));
  }

 private:
  Journal& journal_;
};

}  // namespace redpacket::bus
