// Crash safety of the journal's rotation and release: a child process appends across rotations
// and a release, and is killed (SIGKILL) or meets an I/O error at each RotationStep; the parent
// then recovers the directory and checks that every acknowledged event is back, in order, once,
// and that the journal starts, appends and recovers again. Also: the states an older binary left.
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <future>
#include <string>
#include <tuple>
#include <vector>

#include "bus/local/journal.h"

namespace redpacket::bus {
namespace {

namespace fs = std::filesystem;
using domain::LedgerEvent;

constexpr std::size_t kRecordBytes = 57;   // 8 bytes of header + 49 of payload
constexpr std::size_t kSegmentEvents = 4;  // one event per batch: segments 1-4, 5-8, 9-12, ...
constexpr std::uint64_t kEvents = 20;
constexpr std::uint64_t kReleaseAfter = 12;  // the ledger has applied 10 once 12 is durable:
constexpr std::uint64_t kApplied = 10;       // segments 1-4 and 5-8 are released, two deletions

LedgerEvent MakeEvent(std::uint64_t position) {
  const auto i = static_cast<std::int64_t>(position);
  return LedgerEvent{.type = i % 5 == 0 ? LedgerEvent::Type::kRefund : LedgerEvent::Type::kGrab,
                     .packet_id = i * 7,
                     .user_id = i * 11,
                     .amount_cents = i,
                     .seq = i % 5 == 0 ? 0 : i,
                     .at_millis = 1'700'000'000'000 + i};
}

enum class Fault { kKill, kIoError };

struct Target {
  RotationStep step;
  int occurrence;  // 1: the first rotation (or deletion), 2: the second
  Fault fault;
};

// What the child tells the parent through a pipe, one 16-byte message at a time (atomic writes).
enum Tag : std::uint64_t { kAcknowledged = 1, kLedgerApplied = 2 };

void Report(int fd, Tag tag, std::uint64_t value) {
  const std::uint64_t message[2] = {tag, value};
  if (::write(fd, message, sizeof(message)) != static_cast<ssize_t>(sizeof(message))) _exit(90);
}

Journal::Options Options(const fs::path& directory) {
  Journal::Options options;
  options.directory = directory;
  options.segment_bytes = kSegmentEvents * kRecordBytes;
  return options;
}

// Appends events 1..kEvents one durable batch at a time, reporting each acknowledgement (its
// completion ran: the 200 would have left), and releases what the "ledger" applied. Never returns.
[[noreturn]] void RunChild(const fs::path& directory, Target target, int report_fd) {
  const rlimit no_core{0, 0};
  ::setrlimit(RLIMIT_CORE, &no_core);
  std::atomic<bool> armed{false};
  std::atomic<int> seen{0};
  Journal::Options options = Options(directory);
  options.step_hook = [&](RotationStep step) -> domain::Status {
    if (!armed.load() || step != target.step || ++seen != target.occurrence) return {};
    if (target.fault == Fault::kKill) {
      ::kill(::getpid(), SIGKILL);
      while (true) ::pause();  // never goes on past the step
    }
    return domain::MakeError(domain::ErrorCode::kInternal, "injected I/O error");
  };
  Journal journal(options);
  if (!journal.Recover(0).ok()) _exit(91);
  journal.Start(nullptr);
  for (std::uint64_t position = 1; position <= kEvents; ++position) {
    // Armed once the first segment exists (the first batch creates it): the steps counted are
    // the rotations'.
    armed = position > 1;
    std::promise<void> durable;
    const std::uint64_t got = journal.Append(MakeEvent(position), [&, position] {
      Report(report_fd, kAcknowledged, position);
      durable.set_value();
    });
    if (got != position) _exit(92);
    durable.get_future().wait();
    if (position == kReleaseAfter) {
      Report(report_fd, kLedgerApplied, kApplied);  // committed in the ledger, then released
      journal.ReleaseUpTo(kApplied);
    }
  }
  journal.Stop();
  _exit(0);
}

class RotationFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    // tmpfs when there is one: a killed process leaves exactly what it wrote in the page cache,
    // on any file system, and 36 children's zeroed segments need not reach a shared disk.
    const fs::path base =
        fs::is_directory("/dev/shm") ? fs::path("/dev/shm") : fs::temp_directory_path();
    std::string pattern = (base / "rp-rotation-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    root_ = pattern;
  }
  void TearDown() override { fs::remove_all(root_); }
  fs::path directory() const { return root_ / "journal"; }

  static std::uint64_t AppendDurably(Journal& journal, std::uint64_t position) {
    std::promise<void> durable;
    const std::uint64_t got =
        journal.Append(MakeEvent(position), [&durable] { durable.set_value(); });
    durable.get_future().wait();
    return got;
  }

  // Recovers as the server would after the crash (the ledger's applied position as a floor) and
  // checks every acknowledged event is back, in order, once; then that the journal starts again,
  // appends across a rotation, and recovers that too.
  void ExpectRecoverable(std::uint64_t applied, const std::vector<std::uint64_t>& acknowledged) {
    std::uint64_t last = applied;
    {
      Journal journal(Options(directory()));
      auto recovered = journal.Recover(applied);
      ASSERT_TRUE(recovered.ok()) << recovered.error().message;
      for (const PositionedEvent& event : *recovered) {
        ASSERT_EQ(event.position, last + 1) << "a gap or a repeat";
        EXPECT_EQ(event.event, MakeEvent(event.position));
        last = event.position;
      }
      for (std::uint64_t position : acknowledged) {
        if (position > applied) {
          EXPECT_LE(position, last) << "acknowledged event lost";
        }
      }
      journal.Start(nullptr);
      for (std::uint64_t i = 1; i <= kSegmentEvents + 1; ++i) {
        ASSERT_EQ(AppendDurably(journal, last + i), last + i);
      }
      journal.Stop();
    }
    Journal again(Options(directory()));
    auto recovered = again.Recover(applied);
    ASSERT_TRUE(recovered.ok()) << recovered.error().message;
    ASSERT_EQ(recovered->size(), last + kSegmentEvents + 1 - applied);
    for (std::size_t i = 0; i < recovered->size(); ++i) {
      EXPECT_EQ((*recovered)[i].position, applied + 1 + i);
      EXPECT_EQ((*recovered)[i].event, MakeEvent(applied + 1 + i));
    }
    again.Stop();
    auto audited = Journal::ReadAll(directory(), applied);
    ASSERT_TRUE(audited.ok()) << audited.error().message;
    EXPECT_EQ(audited->size(), recovered->size());
  }

  fs::path root_;
};

class JournalRotationTest
    : public RotationFixture,
      public ::testing::WithParamInterface<std::tuple<RotationStep, int, Fault>> {};

TEST_P(JournalRotationTest, EveryAcknowledgedEventSurvivesAStopAtThisStep) {
  const auto [step, occurrence, fault] = GetParam();
  int pipe_fds[2];
  ASSERT_EQ(::pipe(pipe_fds), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::close(pipe_fds[0]);
    RunChild(directory(), Target{step, occurrence, fault}, pipe_fds[1]);
  }
  ::close(pipe_fds[1]);
  std::vector<std::uint64_t> acknowledged;
  std::uint64_t applied = 0;
  std::uint64_t message[2];
  while (::read(pipe_fds[0], message, sizeof(message)) == static_cast<ssize_t>(sizeof(message))) {
    if (message[0] == kAcknowledged) acknowledged.push_back(message[1]);
    if (message[0] == kLedgerApplied) applied = message[1];
  }
  ::close(pipe_fds[0]);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);

  // The child must really have stopped at the step (else this case tests nothing). A failed
  // deletion is harmless and the journal goes on; any other failure aborts the process.
  const bool release_step =
      step == RotationStep::kRemoveReleased || step == RotationStep::kSyncAfterRemove;
  if (fault == Fault::kKill) {
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "status " << status;
  } else if (release_step) {
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status;
    EXPECT_EQ(acknowledged.size(), kEvents);
  } else {
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT) << "status " << status;
  }
  if (!release_step) {
    EXPECT_LT(acknowledged.size(), kEvents);
  }
  // Completions run in position order: the acknowledged ones are 1..n.
  for (std::size_t i = 0; i < acknowledged.size(); ++i) ASSERT_EQ(acknowledged[i], i + 1);
  ExpectRecoverable(applied, acknowledged);
}

std::string CaseName(const ::testing::TestParamInfo<JournalRotationTest::ParamType>& info) {
  static const char* const kSteps[] = {"TrimClosing",    "SyncClosing",    "CreateNext",
                                       "SyncDirectory",  "Preallocate",    "WriteFirstBatch",
                                       "SyncFirstBatch", "RemoveReleased", "SyncAfterRemove"};
  const auto [step, occurrence, fault] = info.param;
  return std::string(kSteps[static_cast<int>(step)]) + std::to_string(occurrence) +
         (fault == Fault::kKill ? "Killed" : "IoError");
}

INSTANTIATE_TEST_SUITE_P(
    EveryStep, JournalRotationTest,
    ::testing::Combine(::testing::Values(RotationStep::kTrimClosing, RotationStep::kSyncClosing,
                                         RotationStep::kCreateNext, RotationStep::kSyncDirectory,
                                         RotationStep::kPreallocate, RotationStep::kWriteFirstBatch,
                                         RotationStep::kSyncFirstBatch,
                                         RotationStep::kRemoveReleased,
                                         RotationStep::kSyncAfterRemove),
                       ::testing::Values(1, 2), ::testing::Values(Fault::kKill, Fault::kIoError)),
    CaseName);

// The states an older binary (which created the next segment before trimming the full one) left
// on disk, written here by hand.
class LeftoverSegmentTest : public RotationFixture {
 protected:
  // Segments 1-4, 5-8, 9-12, all trimmed, one event per batch.
  void WriteTwelveEvents() {
    Journal journal(Options(directory()));
    ASSERT_TRUE(journal.Recover(0).ok());
    journal.Start(nullptr);
    for (std::uint64_t position = 1; position <= 12; ++position) AppendDurably(journal, position);
  }
  fs::path Segment(std::uint64_t first) const {
    char name[64];
    std::snprintf(name, sizeof(name), "journal-%020llu.log",
                  static_cast<unsigned long long>(first));
    return directory() / name;
  }
  // Appends `bytes` to the file (zeros: the zeroed space a rotation did not trim).
  static void AppendBytes(const fs::path& file, const std::string& bytes) {
    std::ofstream(file, std::ios::binary | std::ios::app) << bytes;
  }
};

TEST_F(LeftoverSegmentTest, AZeroTailInAClosedSegmentIsARotationCutShort) {
  WriteTwelveEvents();
  AppendBytes(Segment(5), std::string(1 << 20, '\0'));
  ExpectRecoverable(0, {});
  EXPECT_EQ(fs::file_size(Segment(5)), 4 * kRecordBytes);  // recovery finished the trim
}

TEST_F(LeftoverSegmentTest, AnEmptyNextSegmentAfterAnUntrimmedOneIsAccepted) {
  WriteTwelveEvents();
  AppendBytes(Segment(9), std::string(1 << 20, '\0'));
  AppendBytes(Segment(13), "");  // created, nothing written yet
  ExpectRecoverable(0, {});
}

TEST_F(LeftoverSegmentTest, ZerosOverAcknowledgedRecordsOfAClosedSegmentAreAnError) {
  WriteTwelveEvents();
  // Records 7 and 8 zeroed: the positions then jump from 6 to 9 at the next segment.
  fs::resize_file(Segment(5), 2 * kRecordBytes);
  AppendBytes(Segment(5), std::string(2 * kRecordBytes + 4096, '\0'));
  Journal journal(Options(directory()));
  auto recovered = journal.Recover(0);
  ASSERT_FALSE(recovered.ok());
  EXPECT_NE(recovered.error().message.find("previous segment ends before"), std::string::npos)
      << recovered.error().message;
  EXPECT_FALSE(Journal::ReadAll(directory(), 0).ok());
}

TEST_F(LeftoverSegmentTest, NonZeroBytesAfterAClosedSegmentsRecordsAreAnError) {
  WriteTwelveEvents();
  AppendBytes(Segment(5), std::string(4096, '\0') + "x" + std::string(100, '\0'));
  Journal journal(Options(directory()));
  auto recovered = journal.Recover(0);
  ASSERT_FALSE(recovered.ok());
  EXPECT_NE(recovered.error().message.find("corrupt"), std::string::npos);
}

}  // namespace
}  // namespace redpacket::bus
