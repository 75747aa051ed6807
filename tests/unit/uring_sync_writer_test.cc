// Tests of UringSyncWriter: a linked write + fdatasync lands in the file and is reported through
// the eventfd; one pair at a time; a failed write is reported and cancels its fsync.
#include "bus/local/uring_sync_writer.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <stdlib.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>

namespace redpacket::bus {
namespace {

namespace fs = std::filesystem;

class UringSyncWriterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "rp-uring-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    root_ = pattern;
    auto writer = UringSyncWriter::Create();
    ASSERT_TRUE(writer.ok()) << writer.error().message;
    writer_ = std::move(*writer);
  }
  void TearDown() override {
    writer_.reset();
    fs::remove_all(root_);
  }

  static std::string Read(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  }
  // Blocks until the eventfd says a pair finished.
  void WaitForEvent() const {
    pollfd watched{.fd = writer_->event_fd(), .events = POLLIN, .revents = 0};
    ASSERT_EQ(::poll(&watched, 1, 10'000), 1);
  }

  fs::path root_;
  std::unique_ptr<UringSyncWriter> writer_;
};

TEST_F(UringSyncWriterTest, WritesAtTheOffsetSyncsAndSignalsTheEventFd) {
  const fs::path path = root_ / "segment";
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0);
  const std::string first = "first batch|";
  const std::string second = "second";
  for (const auto& [text, offset] : {std::pair{first, 0}, std::pair{second, 12}}) {
    ASSERT_TRUE(writer_->Submit(fd, reinterpret_cast<const std::byte*>(text.data()), text.size(),
                                offset)
                    .ok());
    EXPECT_TRUE(writer_->in_flight());
    // One pair at a time: a second submission is refused while this one is in flight.
    EXPECT_FALSE(writer_->Submit(fd, reinterpret_cast<const std::byte*>(text.data()), 1, 0).ok());
    std::optional<UringSyncWriter::Outcome> outcome;
    while (!(outcome = writer_->Poll())) WaitForEvent();
    EXPECT_EQ(outcome->written, static_cast<std::int64_t>(text.size()));
    EXPECT_EQ(outcome->synced, 0);
    EXPECT_FALSE(writer_->in_flight());
  }
  EXPECT_EQ(Read(path), first + second);
  EXPECT_FALSE(writer_->Poll().has_value());  // nothing in flight
  EXPECT_FALSE(writer_->Wait().has_value());
  ::close(fd);
}

TEST_F(UringSyncWriterTest, WaitBlocksUntilThePairFinished) {
  const fs::path path = root_ / "segment";
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0);
  const std::string text(64 * 1024, 'x');
  ASSERT_TRUE(writer_->Submit(fd, reinterpret_cast<const std::byte*>(text.data()), text.size(), 0).ok());
  const auto outcome = writer_->Wait();
  ASSERT_TRUE(outcome.has_value());
  EXPECT_EQ(outcome->written, static_cast<std::int64_t>(text.size()));
  EXPECT_EQ(outcome->synced, 0);
  EXPECT_EQ(fs::file_size(path), text.size());
  ::close(fd);
}

TEST_F(UringSyncWriterTest, AFailedWriteIsReportedAndItsSyncNeverRuns) {
  const fs::path path = root_ / "read-only";
  { std::ofstream(path) << "old"; }
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  const std::string text = "new";
  ASSERT_TRUE(writer_->Submit(fd, reinterpret_cast<const std::byte*>(text.data()), text.size(), 0).ok());
  std::optional<UringSyncWriter::Outcome> outcome;
  while (!(outcome = writer_->Poll())) WaitForEvent();
  EXPECT_EQ(outcome->written, -EBADF);
  EXPECT_EQ(outcome->synced, -ECANCELED);
  EXPECT_EQ(Read(path), "old");
  ::close(fd);
}

}  // namespace
}  // namespace redpacket::bus
