// The bus conformance suite (tests/bus/bus_conformance.h) on the local journal, embedded mode's
// bus: a unit test, so it also runs under ASan/UBSan and TSan. The same cases run on Kafka in
// tests/kafka/bus_conformance_kafkatest.cc.
//
// The journal has one consumer, the ledger, and keeps no offsets of its own: the ledger stores
// the applied position in the transaction that applies the events, and at start the process
// recovers the journal from there (app/embedded_backend.cc). So here a new member of a group is
// that restart: the journal stopped, opened again on the same directory, recovered after the
// group's committed position, and a JournalSource fed with what it recovered and then with each
// durable batch. Commit records the position, as the ledger would, and releases the segments it
// covers; the segments are small, so that the resume case crosses released ones.
#include "tests/bus/bus_conformance.h"

#include <stdlib.h>

#include <filesystem>
#include <stdexcept>

#include "bus/local/journal.h"
#include "bus/local/journal_sink.h"
#include "bus/local/journal_source.h"

namespace redpacket::bus::conformance {
namespace {

namespace fs = std::filesystem;

class JournalBus {
 public:
  static constexpr bool kCarriesRawBytes = false;
  static constexpr const char* kNoRawBytesBecause =
      "the journal holds only events it encoded, each record checksummed: nothing undecodable "
      "is ever delivered, and a damaged record that is not a torn tail stops recovery "
      "(journal_test: DamageBeforeALaterBatchIsAnError, DamageInAClosedSegmentIsAnError) rather than being set aside";

  JournalBus() {
    std::string pattern = (fs::temp_directory_path() / "rp-bus-journal-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    root_ = pattern;
  }
  ~JournalBus() {
    if (journal_) journal_->Stop();
    std::error_code ignored;
    fs::remove_all(root_, ignored);
  }
  JournalBus(const JournalBus&) = delete;
  JournalBus& operator=(const JournalBus&) = delete;

  // Appends to whichever journal is open now (a restart replaces it).
  std::unique_ptr<EventSink> MakeSink() {
    if (!journal_) Restart(0);
    return std::make_unique<CurrentSink>(*this);
  }
  std::unique_ptr<EventSource> MakeSource(const std::string& group) {
    Restart(committed_[group]);
    return std::make_unique<GroupMember>(*this, group);
  }

 private:
  class CurrentSink final : public EventSink {
   public:
    explicit CurrentSink(JournalBus& bus) : bus_(bus) {}
    std::uint64_t Append(const LedgerEvent& event, Completion done) override {
      return bus_.sink_->Append(event, std::move(done));
    }
    void WhenDurable(std::uint64_t position, Completion done) override {
      bus_.sink_->WhenDurable(position, std::move(done));
    }

   private:
    JournalBus& bus_;
  };

  class GroupMember final : public EventSource {
   public:
    GroupMember(JournalBus& bus, std::string group) : bus_(bus), group_(std::move(group)) {}
    domain::Result<std::vector<ConsumedMessage>> Poll(std::size_t max_messages,
                                                      std::chrono::milliseconds wait) override {
      return bus_.source_->Poll(max_messages, wait);
    }
    domain::Status Commit(const PartitionOffsets& applied) override {
      if (auto it = applied.find(0); it != applied.end()) {
        std::uint64_t& committed = bus_.committed_[group_];
        committed = std::max(committed, it->second);
      }
      return bus_.source_->Commit(applied);
    }
    domain::Status DeadLetter(const ConsumedMessage& message, const std::string& reason) override {
      return bus_.source_->DeadLetter(message, reason);
    }
    std::optional<std::uint64_t> Lag() override { return bus_.source_->Lag(); }

   private:
    JournalBus& bus_;
    std::string group_;
  };

  // What the process does at start (app/embedded_backend.cc), after stopping the journal that
  // runs now as SIGTERM would.
  void Restart(std::uint64_t applied) {
    if (journal_) journal_->Stop();
    sink_.reset();
    source_.reset();
    journal_.reset();
    Journal::Options options;
    options.directory = root_ / "journal";
    options.segment_bytes = 1024;  // about 17 events per segment
    journal_ = std::make_unique<Journal>(options);
    auto recovered = journal_->Recover(applied);
    if (!recovered) throw std::runtime_error("cannot recover: " + recovered.error().message);
    sink_ = std::make_unique<JournalSink>(*journal_);
    source_ = std::make_unique<JournalSource>(*journal_);
    source_->Push(*recovered);
    journal_->Start([this](std::span<const PositionedEvent> durable) { source_->Push(durable); });
  }

  fs::path root_;
  std::map<std::string, std::uint64_t> committed_;  // by group: what the ledger would store
  std::unique_ptr<Journal> journal_;
  std::unique_ptr<JournalSink> sink_;
  std::unique_ptr<JournalSource> source_;
};

}  // namespace

INSTANTIATE_TYPED_TEST_SUITE_P(Journal, BusConformance, ::testing::Types<JournalBus>);

}  // namespace redpacket::bus::conformance
