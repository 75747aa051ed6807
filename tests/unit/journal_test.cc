// Tests of the local journal: group commit under concurrent appends, recovery (torn tails cut,
// damage refused), rotation and release of segments, WhenDurable, and the batch size achieved.
#include "bus/local/journal.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <thread>
#include <vector>

namespace redpacket::bus {
namespace {

namespace fs = std::filesystem;
using domain::LedgerEvent;

constexpr std::size_t kRecordBytes = 57;  // 8 bytes of header + 49 of payload

LedgerEvent MakeEvent(std::int64_t i) {
  return LedgerEvent{.type = i % 5 == 0 ? LedgerEvent::Type::kRefund : LedgerEvent::Type::kGrab,
                     .packet_id = i * 7,
                     .user_id = i * 11,
                     .amount_cents = i,
                     .seq = i % 5 == 0 ? 0 : i,
                     .at_millis = 1'700'000'000'000 + i};
}

class JournalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "rp-journal-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    root_ = pattern;
  }
  void TearDown() override { fs::remove_all(root_); }

  Journal::Options Options(std::size_t segment_bytes = 64u << 20) const {
    return Journal::Options{
        .directory = directory(), .segment_bytes = segment_bytes, .max_batch_events = 4096};
  }
  fs::path directory() const { return root_ / "journal"; }

  std::vector<fs::path> Segments() const {
    std::vector<fs::path> segments;
    for (const auto& entry : fs::directory_iterator(directory())) segments.push_back(entry.path());
    std::sort(segments.begin(), segments.end());
    return segments;
  }

  // Appends and waits until the event is durable: every call is its own write batch.
  static std::uint64_t AppendDurably(Journal& journal, const LedgerEvent& event) {
    std::promise<void> durable;
    const std::uint64_t position = journal.Append(event, [&durable] { durable.set_value(); });
    durable.get_future().wait();
    return position;
  }

  // A journal holding events 1..count, one batch each, then stopped.
  void WriteJournal(std::int64_t count, std::size_t segment_bytes = 64u << 20) {
    Journal journal(Options(segment_bytes));
    ASSERT_TRUE(journal.Recover(0).ok());
    journal.Start(nullptr);
    for (std::int64_t i = 1; i <= count; ++i) AppendDurably(journal, MakeEvent(i));
  }

  static void FlipByte(const fs::path& file, std::size_t offset) {
    std::fstream stream(file, std::ios::in | std::ios::out | std::ios::binary);
    stream.seekg(static_cast<std::streamoff>(offset));
    const char byte = static_cast<char>(stream.get() ^ 0x5a);
    stream.seekp(static_cast<std::streamoff>(offset));
    stream.put(byte);
  }

  fs::path root_;
};

TEST_F(JournalTest, ConcurrentAppendsGetDensePositionsInOrder) {
  constexpr int kThreads = 8;
  constexpr int kPerThread = 2000;
  Journal journal(Options());
  ASSERT_TRUE(journal.Recover(0).ok());
  std::vector<std::uint64_t> durable_order;     // writer thread only, read after Stop()
  std::vector<std::uint64_t> completion_order;  // writer thread only, read after Stop()
  journal.Start([&](std::span<const PositionedEvent> batch) {
    for (const PositionedEvent& event : batch) durable_order.push_back(event.position);
  });

  std::vector<std::vector<std::uint64_t>> returned(kThreads);
  std::vector<std::thread> threads;
  threads.reserve(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        // amount_cents is unique per event: the completions record it, to be compared with
        // the order of the events on disk.
        const LedgerEvent event = MakeEvent(t * kPerThread + i + 1);
        const std::uint64_t position = journal.Append(event, [&completion_order, event] {
          completion_order.push_back(static_cast<std::uint64_t>(event.amount_cents));
        });
        returned[static_cast<std::size_t>(t)].push_back(position);
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  journal.Stop();

  constexpr std::uint64_t kTotal = std::uint64_t{kThreads} * kPerThread;
  EXPECT_EQ(journal.durable_position(), kTotal);
  EXPECT_EQ(journal.last_position(), kTotal);
  EXPECT_EQ(journal.queued_events(), 0u);
  ASSERT_EQ(durable_order.size(), kTotal);
  for (std::uint64_t i = 0; i < kTotal; ++i) ASSERT_EQ(durable_order[i], i + 1);

  std::vector<std::uint64_t> all;
  for (const auto& positions : returned) {
    EXPECT_TRUE(std::is_sorted(positions.begin(), positions.end()));
    all.insert(all.end(), positions.begin(), positions.end());
  }
  std::sort(all.begin(), all.end());
  for (std::uint64_t i = 0; i < kTotal; ++i) ASSERT_EQ(all[i], i + 1);

  // Every completion ran once, in position order.
  ASSERT_EQ(completion_order.size(), kTotal);
  auto recovered = Journal::ReadAll(directory(), 0);
  ASSERT_TRUE(recovered.ok());
  ASSERT_EQ(recovered->size(), kTotal);
  for (std::uint64_t i = 0; i < kTotal; ++i) {
    ASSERT_EQ(static_cast<std::uint64_t>((*recovered)[i].event.amount_cents), completion_order[i]);
  }
}

TEST_F(JournalTest, RecoverReturnsWhatWasWritten) {
  WriteJournal(10);
  Journal journal(Options());
  auto recovered = journal.Recover(0);
  ASSERT_TRUE(recovered.ok()) << recovered.error().message;
  ASSERT_EQ(recovered->size(), 10u);
  for (std::int64_t i = 1; i <= 10; ++i) {
    EXPECT_EQ((*recovered)[static_cast<std::size_t>(i - 1)].position,
              static_cast<std::uint64_t>(i));
    EXPECT_EQ((*recovered)[static_cast<std::size_t>(i - 1)].event, MakeEvent(i));
  }
  EXPECT_EQ(journal.durable_position(), 10u);
  journal.Start(nullptr);
  EXPECT_EQ(AppendDurably(journal, MakeEvent(11)), 11u);
  journal.Stop();

  Journal again(Options());
  auto after = again.Recover(8);
  ASSERT_TRUE(after.ok());
  ASSERT_EQ(after->size(), 3u);
  EXPECT_EQ((*after)[0].position, 9u);
  EXPECT_EQ((*after)[2].event, MakeEvent(11));
}

TEST_F(JournalTest, TornTailIsCutAndTheJournalContinues) {
  WriteJournal(5);
  const fs::path segment = Segments().back();
  fs::resize_file(segment, 5 * kRecordBytes - 3);  // the last record lost its last bytes
  {
    Journal journal(Options());
    auto recovered = journal.Recover(0);
    ASSERT_TRUE(recovered.ok()) << recovered.error().message;
    EXPECT_EQ(recovered->size(), 4u);
    EXPECT_EQ(fs::file_size(segment), 4 * kRecordBytes);
    journal.Start(nullptr);
    EXPECT_EQ(AppendDurably(journal, MakeEvent(5)), 5u);
  }
  {
    std::ofstream garbage(segment, std::ios::app | std::ios::binary);
    for (int i = 0; i < 100; ++i) garbage.put(static_cast<char>(i * 37 + 11));
  }
  Journal journal(Options());
  auto recovered = journal.Recover(0);
  ASSERT_TRUE(recovered.ok()) << recovered.error().message;
  EXPECT_EQ(recovered->size(), 5u);
  EXPECT_EQ(fs::file_size(segment), 5 * kRecordBytes);
}

TEST_F(JournalTest, ReadAllToleratesATornTailWithoutTouchingIt) {
  WriteJournal(3);
  const fs::path segment = Segments().back();
  fs::resize_file(segment, 3 * kRecordBytes - 10);
  auto events = Journal::ReadAll(directory(), 1);
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->size(), 1u);
  EXPECT_EQ((*events)[0].position, 2u);
  EXPECT_EQ(fs::file_size(segment), 3 * kRecordBytes - 10);
  EXPECT_EQ(Journal::ReadAll(root_ / "absent", 0).error().code, domain::ErrorCode::kNotFound);
}

TEST_F(JournalTest, DamageBeforeALaterBatchIsAnError) {
  WriteJournal(5);                                     // five batches of one event
  FlipByte(Segments().back(), 2 * kRecordBytes + 20);  // inside record 3's payload
  Journal journal(Options());
  auto recovered = journal.Recover(0);
  ASSERT_FALSE(recovered.ok());
  EXPECT_NE(recovered.error().message.find("corrupt"), std::string::npos);
  EXPECT_FALSE(Journal::ReadAll(directory(), 0).ok());
}

TEST_F(JournalTest, DamageInAClosedSegmentIsAnError) {
  WriteJournal(30, 5 * kRecordBytes);  // rotates every five records
  ASSERT_GT(Segments().size(), 2u);
  FlipByte(Segments().front(), kRecordBytes * 4 + 1);  // the length field of its last record
  Journal journal(Options());
  EXPECT_FALSE(journal.Recover(0).ok());
}

TEST_F(JournalTest, DamageInsideTheLastBatchIsATornTail) {
  // One batch of three: if its fdatasync never returned, nobody was acknowledged, and any of
  // its records may be the one that did not reach the disk.
  Journal writer(Options());
  ASSERT_TRUE(writer.Recover(0).ok());
  writer.Append(MakeEvent(1), nullptr);
  writer.Append(MakeEvent(2), nullptr);
  writer.Append(MakeEvent(3), nullptr);
  writer.Stop();  // never started: Stop() writes the queue as one batch
  FlipByte(Segments().back(), kRecordBytes + 30);
  Journal journal(Options());
  auto recovered = journal.Recover(0);
  ASSERT_TRUE(recovered.ok()) << recovered.error().message;
  EXPECT_EQ(recovered->size(), 1u);
  EXPECT_EQ(fs::file_size(Segments().back()), kRecordBytes);
}

TEST_F(JournalTest, RotationAndReleaseDeleteOnlyAppliedSegments) {
  Journal journal(Options(10 * kRecordBytes));
  ASSERT_TRUE(journal.Recover(0).ok());
  journal.Start(nullptr);
  for (std::int64_t i = 1; i <= 95; ++i) AppendDurably(journal, MakeEvent(i));
  std::vector<fs::path> segments = Segments();
  ASSERT_EQ(segments.size(), 10u);  // 1-10, 11-20, ..., 91-95
  EXPECT_EQ(segments.front().filename(), "journal-00000000000000000001.log");
  EXPECT_EQ(segments.back().filename(), "journal-00000000000000000091.log");

  journal.ReleaseUpTo(35);  // 1-10, 11-20, 21-30 are applied; 31-40 is not entirely
  segments = Segments();
  ASSERT_EQ(segments.size(), 7u);
  EXPECT_EQ(segments.front().filename(), "journal-00000000000000000031.log");

  journal.ReleaseUpTo(1000);  // the current segment stays
  segments = Segments();
  ASSERT_EQ(segments.size(), 1u);
  EXPECT_EQ(segments.front().filename(), "journal-00000000000000000091.log");
  journal.Stop();

  Journal again(Options(10 * kRecordBytes));
  auto recovered = again.Recover(92);
  ASSERT_TRUE(recovered.ok()) << recovered.error().message;
  ASSERT_EQ(recovered->size(), 3u);
  EXPECT_EQ(recovered->front().position, 93u);
  // A ledger that applied less than the journal still holds has lost events: refuse.
  Journal behind(Options(10 * kRecordBytes));
  EXPECT_FALSE(behind.Recover(50).ok());
}

TEST_F(JournalTest, PositionsNeverGoBack) {
  {
    Journal journal(Options());
    ASSERT_TRUE(journal.Recover(1000).ok());  // empty journal, ledger at 1000
    EXPECT_EQ(journal.durable_position(), 1000u);
    journal.Start(nullptr);
    EXPECT_EQ(AppendDurably(journal, MakeEvent(1)), 1001u);
    EXPECT_EQ(AppendDurably(journal, MakeEvent(2)), 1002u);
  }
  Journal journal(Options());
  auto recovered = journal.Recover(2000);  // the ledger is ahead of everything on disk
  ASSERT_TRUE(recovered.ok()) << recovered.error().message;
  EXPECT_TRUE(recovered->empty());
  journal.Start(nullptr);
  EXPECT_EQ(AppendDurably(journal, MakeEvent(3)), 2001u);
  journal.Stop();
  auto events = Journal::ReadAll(directory(), 0);
  ASSERT_TRUE(events.ok()) << events.error().message;
  ASSERT_EQ(events->size(), 1u);
  EXPECT_EQ((*events)[0].position, 2001u);
}

TEST_F(JournalTest, WhenDurableRunsOncePositionsAreDurable) {
  Journal journal(Options());
  ASSERT_TRUE(journal.Recover(0).ok());
  bool ran_now = false;
  journal.WhenDurable(0, [&] { ran_now = true; });  // nothing to wait for: runs at once
  EXPECT_TRUE(ran_now);

  journal.Append(MakeEvent(1), nullptr);
  journal.Append(MakeEvent(2), nullptr);
  std::promise<std::thread::id> second;
  std::promise<std::thread::id> fourth;
  journal.WhenDurable(2, [&] { second.set_value(std::this_thread::get_id()); });
  journal.WhenDurable(4, [&] { fourth.set_value(std::this_thread::get_id()); });  // not appended
  auto second_done = second.get_future();
  auto fourth_done = fourth.get_future();
  EXPECT_EQ(journal.durable_position(), 0u);  // the writer is not started yet
  EXPECT_EQ(journal.queued_events(), 2u);

  journal.Start(nullptr);
  EXPECT_NE(second_done.get(), std::this_thread::get_id());  // ran on the writer thread
  EXPECT_GE(journal.durable_position(), 2u);
  journal.WhenDurable(1, [&] { ran_now = false; });  // already durable: at once, on this thread
  EXPECT_FALSE(ran_now);

  journal.Append(MakeEvent(3), nullptr);
  journal.Append(MakeEvent(4), nullptr);
  fourth_done.wait();
  EXPECT_EQ(journal.durable_position(), 4u);
}

TEST_F(JournalTest, StopDrainsTheQueueAndRunsCompletions) {
  int completed = 0;
  {
    Journal journal(Options());
    ASSERT_TRUE(journal.Recover(0).ok());
    journal.Start(nullptr);
    for (std::int64_t i = 1; i <= 1000; ++i) journal.Append(MakeEvent(i), [&] { ++completed; });
    journal.Stop();
    EXPECT_EQ(completed, 1000);
    EXPECT_EQ(journal.durable_position(), 1000u);
    journal.Stop();  // idempotent; the destructor stops again
  }
  Journal journal(Options());
  auto recovered = journal.Recover(0);
  ASSERT_TRUE(recovered.ok());
  EXPECT_EQ(recovered->size(), 1000u);
}

// The reason goes to the log (spdlog::critical), not necessarily to stderr: only death is checked.
TEST_F(JournalTest, AppendOutsideRecoverAndStopAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        Journal journal(Options());
        journal.Append(MakeEvent(1), nullptr);
      },
      "");
  EXPECT_DEATH(
      {
        Journal journal(Options());
        (void)journal.Recover(0);
        journal.Stop();
        journal.Append(MakeEvent(1), nullptr);
      },
      "");
}

TEST_F(JournalTest, AverageBatchSizeUnderConcurrentAppends) {
  constexpr int kThreads = 8;
  // Runs `append` on kThreads threads against the journal, then counts its fsync'ed batches.
  auto measure = [this](std::uint64_t after_position, const std::function<void(Journal&)>& append) {
    Journal journal(Options());
    EXPECT_TRUE(journal.Recover(after_position).ok());
    std::size_t batches = 0;
    std::size_t events = 0;
    journal.Start([&](std::span<const PositionedEvent> batch) {
      ++batches;
      events += batch.size();
    });
    std::vector<std::thread> threads;
    threads.reserve(kThreads);
    for (int t = 0; t < kThreads; ++t) threads.emplace_back([&] { append(journal); });
    for (std::thread& thread : threads) thread.join();
    journal.Stop();
    return std::pair(events, batches);
  };

  // Open loop: each thread appends as fast as it can, as I/O threads do under a stampede.
  constexpr int kOpenPerThread = 4000;
  auto [open_events, open_batches] = measure(0, [](Journal& journal) {
    for (int i = 1; i <= kOpenPerThread; ++i) journal.Append(MakeEvent(i), nullptr);
  });
  EXPECT_EQ(open_events, std::size_t{kThreads} * kOpenPerThread);
  std::printf("open loop, %d threads: %zu events in %zu fsync'ed batches, %.1f events/batch\n",
              kThreads, open_events, open_batches,
              static_cast<double>(open_events) / static_cast<double>(open_batches));

  // Closed loop: each thread waits for its event to be durable before the next, like a client
  // waiting for its reply; a batch then holds at most one event per thread.
  constexpr int kClosedPerThread = 200;
  auto [closed_events, closed_batches] = measure(open_events, [](Journal& journal) {
    for (int i = 1; i <= kClosedPerThread; ++i) AppendDurably(journal, MakeEvent(i));
  });
  EXPECT_EQ(closed_events, std::size_t{kThreads} * kClosedPerThread);
  std::printf("closed loop, %d threads: %zu events in %zu fsync'ed batches, %.1f events/batch\n",
              kThreads, closed_events, closed_batches,
              static_cast<double>(closed_events) / static_cast<double>(closed_batches));
}

}  // namespace
}  // namespace redpacket::bus
