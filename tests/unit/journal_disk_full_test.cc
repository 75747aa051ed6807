// The journal on a full disk (ENOSPC injected through Options::step_hook, as the real error is
// handled): the writer keeps the batch and writes it again once there is room; meanwhile
// Accepting() refuses, every completion and waiter that can fail fails at once and the others
// wait; no event is lost, none is written twice, and positions stay continuous, across restarts
// too. For both writers: the writer thread and the event loop's io_uring. Also a full disk at
// each rotation step, and Stop() while the disk stays full.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <filesystem>
#include <future>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "bus/local/journal.h"
#include "domain/clock.h"

namespace redpacket::bus {
namespace {

namespace asio = boost::asio;
namespace fs = std::filesystem;
using domain::ErrorCode;
using domain::LedgerEvent;
using std::chrono::seconds;

constexpr std::size_t kRecordBytes = 57;  // 8 bytes of header + 49 of payload

LedgerEvent MakeEvent(std::int64_t i) {
  return LedgerEvent{.type = LedgerEvent::Type::kGrab,
                     .packet_id = 1 + i % 3,
                     .user_id = i,
                     .amount_cents = i,
                     .seq = i,
                     .at_millis = 1'700'000'000'000 + i};
}

// A disk that is full at one step of the write path while `full` holds.
class Disk {
 public:
  explicit Disk(RotationStep step) : step_(step) {}
  domain::Status Step(RotationStep step) {
    if (step != step_ || !full_.load()) return {};
    ++refused_;
    return domain::MakeError(ErrorCode::kUnavailable, "injected: No space left on device");
  }
  void Fill() { full_ = true; }
  void Free() { full_ = false; }
  int refused() const { return refused_.load(); }

 private:
  RotationStep step_;
  std::atomic<bool> full_{false};
  std::atomic<int> refused_{0};
};

// What a client of one append hears: exactly one of the two, at most once.
struct Outcome {
  std::promise<void> done;
  std::promise<domain::Error> failed;
  std::atomic<int> calls{0};
  Journal::Completion Done() {
    return [this] {
      ++calls;
      done.set_value();
    };
  }
  Journal::Failure Failed() {
    return [this](domain::Error error) {
      ++calls;
      failed.set_value(std::move(error));
    };
  }
};

enum class Writer { kThread, kLoop };

class JournalDiskFullTest : public ::testing::TestWithParam<Writer> {
 protected:
  void SetUp() override {
    // tmpfs when there is one: many small fdatasyncs and zeroed segments need not reach a disk.
    const fs::path base =
        fs::is_directory("/dev/shm") ? fs::path("/dev/shm") : fs::temp_directory_path();
    std::string pattern = (base / "rp-journal-full-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    root_ = pattern;
  }
  void TearDown() override {
    StopLoop();
    fs::remove_all(root_);
  }

  Journal::Options Options(Disk* disk, std::size_t segment_bytes = 64u << 20) const {
    Journal::Options options{
        .directory = root_ / "journal", .segment_bytes = segment_bytes, .step_hook = {}};
    options.clock = &clock_;
    if (disk != nullptr) {
      options.step_hook = [disk](RotationStep step) { return disk->Step(step); };
    }
    return options;
  }

  // Starts the journal with the test's writer; the listener records every durable position.
  void Start(Journal& journal) {
    auto listener = [this](std::span<const PositionedEvent> batch) {
      std::lock_guard lock(mutex_);
      for (const auto& event : batch) durable_.push_back(event.position);
    };
    if (GetParam() == Writer::kThread) {
      journal.Start(listener);
      return;
    }
    if (!journal.StartOnLoop(listener, io_)) GTEST_SKIP() << "io_uring is unavailable here";
    guard_.emplace(io_.get_executor());
    loop_thread_ = std::thread([this] { io_.run(); });
  }
  void StopLoop() {
    guard_.reset();
    io_.stop();
    if (loop_thread_.joinable()) loop_thread_.join();
  }

  std::vector<std::uint64_t> Durable() {
    std::lock_guard lock(mutex_);
    return durable_;
  }
  static void WaitDurable(Journal& journal, std::uint64_t position) {
    const auto deadline = std::chrono::steady_clock::now() + seconds(30);
    while (journal.durable_position() < position) {
      ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "not durable: " << position;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
  static void ExpectFailsSoon(Outcome& outcome) {
    auto failed = outcome.failed.get_future();
    ASSERT_EQ(failed.wait_for(seconds(10)), std::future_status::ready) << "no prompt failure";
    const domain::Error error = failed.get();
    EXPECT_EQ(error.code, ErrorCode::kUnavailable);
    EXPECT_EQ(error.message, "the journal's disk is full; retry");
  }
  // Recovers the directory and checks it holds exactly positions 1..count, each its event.
  void ExpectRecovers(std::uint64_t count) {
    Journal journal(Options(nullptr));
    auto recovered = journal.Recover(0);
    ASSERT_TRUE(recovered.ok()) << recovered.error().message;
    ASSERT_EQ(recovered->size(), count);
    for (std::size_t i = 0; i < recovered->size(); ++i) {
      EXPECT_EQ((*recovered)[i].position, i + 1);
      EXPECT_EQ((*recovered)[i].event, MakeEvent(static_cast<std::int64_t>(i + 1)));
    }
  }

  fs::path root_;
  domain::ManualTimeSource clock_{domain::FromUnixMillis(1'900'000'000'000)};  // 2030
  std::mutex mutex_;
  std::vector<std::uint64_t> durable_;
  asio::io_context io_{1};
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> guard_;
  std::thread loop_thread_;
};

TEST_P(JournalDiskFullTest, AFullDiskStallsFailsWhatCanFailAndWritesOnceThereIsRoom) {
  Disk disk(RotationStep::kWriteBatch);
  Journal journal(Options(&disk));
  ASSERT_TRUE(journal.Recover(0).ok());
  Start(journal);
  if (IsSkipped()) return;
  Outcome first;
  journal.Append(MakeEvent(1), first.Done(), first.Failed());
  first.done.get_future().wait();
  EXPECT_TRUE(journal.Accepting().ok());
  EXPECT_FALSE(journal.stall());

  disk.Fill();
  Outcome grab;  // a grab: its client hears 503 at once, not when the disk has room
  EXPECT_EQ(journal.Append(MakeEvent(2), grab.Done(), grab.Failed()), 2u);
  ExpectFailsSoon(grab);
  EXPECT_EQ(journal.Accepting().error().message, "the journal's disk is full; retry");
  const auto stall = journal.stall();
  ASSERT_TRUE(stall.has_value());
  EXPECT_NE(stall->reason.find("No space left on device"), std::string::npos) << stall->reason;
  EXPECT_EQ(stall->since, clock_.Now());  // the journal's clock, not the system's
  // Decided meanwhile (a grab that raced the check, a refund): queued behind, never lost.
  Outcome raced;
  EXPECT_EQ(journal.Append(MakeEvent(3), raced.Done(), raced.Failed()), 3u);
  ExpectFailsSoon(raced);
  std::promise<void> refund_durable;
  EXPECT_EQ(journal.Append(MakeEvent(4), [&] { refund_durable.set_value(); }), 4u);
  // A repeated grab waits for the first one's durability: it fails at once too...
  Outcome repeat;
  journal.WhenDurable(2, repeat.Done(), repeat.Failed());
  ExpectFailsSoon(repeat);
  // ...unless it cannot fail: then it waits for room.
  std::promise<void> waiter;
  journal.WhenDurable(4, [&] { waiter.set_value(); });
  EXPECT_EQ(journal.durable_position(), 1u);
  EXPECT_EQ(Durable(), std::vector<std::uint64_t>{1});
  const int refused = disk.refused();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_GT(disk.refused(), refused) << "the writer does not try again";

  disk.Free();
  WaitDurable(journal, 4);
  EXPECT_EQ(refund_durable.get_future().wait_for(seconds(10)), std::future_status::ready);
  EXPECT_EQ(waiter.get_future().wait_for(seconds(10)), std::future_status::ready);
  EXPECT_TRUE(journal.Accepting().ok());
  EXPECT_FALSE(journal.stall());
  // Every event durable once, in order, the failed ones included (they are applied).
  EXPECT_EQ(Durable(), (std::vector<std::uint64_t>{1, 2, 3, 4}));
  Outcome after;
  EXPECT_EQ(journal.Append(MakeEvent(5), after.Done(), after.Failed()), 5u);
  after.done.get_future().wait();
  journal.Stop();
  StopLoop();
  EXPECT_EQ(grab.calls.load(), 1);  // the failure only: its completion never ran
  EXPECT_EQ(raced.calls.load(), 1);
  EXPECT_EQ(repeat.calls.load(), 1);
  EXPECT_EQ(after.calls.load(), 1);
  ExpectRecovers(5);
}

TEST_P(JournalDiskFullTest, StopWhileTheDiskStaysFullDropsOnlyWhatWasNeverAcknowledged) {
  Disk disk(RotationStep::kWriteBatch);
  std::atomic<int> completed{0};
  {
    Journal journal(Options(&disk));
    ASSERT_TRUE(journal.Recover(0).ok());
    Start(journal);
    if (IsSkipped()) return;
    Outcome first;
    journal.Append(MakeEvent(1), first.Done(), first.Failed());
    first.done.get_future().wait();
    disk.Fill();
    Outcome grab;
    journal.Append(MakeEvent(2), grab.Done(), grab.Failed());
    ExpectFailsSoon(grab);
    journal.Append(MakeEvent(3), [&] { ++completed; });
    journal.Stop();  // returns: it does not wait for room
    StopLoop();
    EXPECT_EQ(journal.durable_position(), 1u);
  }
  EXPECT_EQ(completed.load(), 0);
  ExpectRecovers(1);
  // The next start goes on from what is on disk.
  Journal again(Options(nullptr));
  ASSERT_TRUE(again.Recover(0).ok());
  again.Start(nullptr);
  std::promise<void> durable;
  EXPECT_EQ(again.Append(MakeEvent(2), [&] { durable.set_value(); }), 2u);
  durable.get_future().wait();
  again.Stop();
  ExpectRecovers(2);
}

INSTANTIATE_TEST_SUITE_P(BothWriters, JournalDiskFullTest,
                         ::testing::Values(Writer::kThread, Writer::kLoop),
                         [](const ::testing::TestParamInfo<Writer>& info) {
                           return std::string(info.param == Writer::kThread ? "Thread" : "Loop");
                         });

// A full disk at a step of a segment's rotation: creating the next segment or writing its first
// batch waits for room (a rotation cut short goes on where it stopped); the zeroed space ahead
// of the records is skipped, never waited for.
class JournalRotationDiskFullTest : public ::testing::TestWithParam<RotationStep> {
 protected:
  void SetUp() override {
    // tmpfs when there is one: many small fdatasyncs and zeroed segments need not reach a disk.
    const fs::path base =
        fs::is_directory("/dev/shm") ? fs::path("/dev/shm") : fs::temp_directory_path();
    std::string pattern = (base / "rp-journal-full-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    root_ = pattern;
  }
  void TearDown() override { fs::remove_all(root_); }
  fs::path root_;
};

TEST_P(JournalRotationDiskFullTest, EveryEventIsWrittenOnceInOrder) {
  const RotationStep step = GetParam();
  Disk disk(step);
  constexpr std::uint64_t kEvents = 12;  // one per batch, four per segment: two rotations
  Journal::Options options{
      .directory = root_ / "journal", .segment_bytes = 4 * kRecordBytes, .step_hook = {}};
  options.step_hook = [&disk](RotationStep at) { return disk.Step(at); };
  int failed = 0;
  {
    Journal journal(options);
    ASSERT_TRUE(journal.Recover(0).ok());
    journal.Start(nullptr);
    for (std::uint64_t position = 1; position <= kEvents; ++position) {
      // The disk is full from the first rotation on, until the writer has met it.
      if (position == 5) disk.Fill();
      Outcome outcome;
      ASSERT_EQ(journal.Append(MakeEvent(static_cast<std::int64_t>(position)), outcome.Done(),
                               outcome.Failed()),
                position);
      auto done = outcome.done.get_future();
      auto refused = outcome.failed.get_future();
      const auto deadline = std::chrono::steady_clock::now() + seconds(30);
      while (done.wait_for(std::chrono::milliseconds(1)) != std::future_status::ready &&
             refused.wait_for(std::chrono::milliseconds(0)) != std::future_status::ready) {
        ASSERT_LT(std::chrono::steady_clock::now(), deadline);
      }
      if (refused.wait_for(std::chrono::milliseconds(0)) == std::future_status::ready) {
        ++failed;
        std::this_thread::sleep_for(std::chrono::milliseconds(200));  // a retry or two
        disk.Free();
        const auto deadline = std::chrono::steady_clock::now() + seconds(30);
        while (journal.durable_position() < position) {
          ASSERT_LT(std::chrono::steady_clock::now(), deadline);
          std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
      }
    }
    journal.Stop();
  }
  if (step == RotationStep::kPreallocate) {
    EXPECT_EQ(failed, 0) << "a full disk under the zeroed space must not stall the journal";
    EXPECT_GE(disk.refused(), 1);
  } else {
    EXPECT_EQ(failed, 1);
    EXPECT_GE(disk.refused(), 1);
  }
  Journal journal(Journal::Options{.directory = root_ / "journal", .step_hook = {}});
  auto recovered = journal.Recover(0);
  ASSERT_TRUE(recovered.ok()) << recovered.error().message;
  ASSERT_EQ(recovered->size(), kEvents);
  for (std::size_t i = 0; i < kEvents; ++i) {
    EXPECT_EQ((*recovered)[i].position, i + 1);
    EXPECT_EQ((*recovered)[i].event, MakeEvent(static_cast<std::int64_t>(i + 1)));
  }
}

INSTANTIATE_TEST_SUITE_P(AtEachStep, JournalRotationDiskFullTest,
                         ::testing::Values(RotationStep::kCreateNext, RotationStep::kPreallocate,
                                           RotationStep::kWriteFirstBatch,
                                           RotationStep::kWriteBatch),
                         [](const ::testing::TestParamInfo<RotationStep>& info) {
                           switch (info.param) {
                             case RotationStep::kCreateNext: return std::string("CreateNext");
                             case RotationStep::kPreallocate: return std::string("Preallocate");
                             case RotationStep::kWriteFirstBatch:
                               return std::string("WriteFirstBatch");
                             default: return std::string("WriteBatch");
                           }
                         });

}  // namespace
}  // namespace redpacket::bus
