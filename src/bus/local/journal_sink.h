// The local journal seen as the service's EventSink (thread-safe, as the journal is).
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
  domain::Status Accepting() const override { return journal_.Accepting(); }
  std::uint64_t AppendOrFail(const domain::LedgerEvent& event, Completion done,
                             Failure failed) override {
    return journal_.Append(event, std::move(done), std::move(failed));
  }
  void WhenDurableOrFail(std::uint64_t position, Completion done, Failure failed) override {
    journal_.WhenDurable(position, std::move(done), std::move(failed));
  }

 private:
  Journal& journal_;
};

}  // namespace redpacket::bus
