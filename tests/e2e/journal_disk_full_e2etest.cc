// The embedded server with its journal on a disk that is really full (a small tmpfs, filled to
// the last byte, as scripts/chaos does): a server killed and restarted on the full disk starts;
// grabs answer 503 "the journal's disk is full; retry" and /readyz says the journal is stalled;
// once there is room again grabs are acknowledged, and every acknowledged grab is credited.
// Needs root (it mounts the tmpfs); skipped otherwise.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <string>
#include <thread>

#include "harness.h"

namespace redpacket::e2e {
namespace {

namespace fs = std::filesystem;

// Writes a file until the disk answers ENOSPC; returns its path.
fs::path Fill(const fs::path& directory) {
  const fs::path path = directory / "fill";
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error("cannot create " + path.string());
  std::string chunk(1 << 16, '\1');
  off_t offset = 0;
  std::size_t size = chunk.size();
  while (true) {
    const ssize_t written = ::pwrite(fd, chunk.data(), size, offset);
    if (written > 0) {
      offset += written;
      continue;
    }
    if (size == 1) break;
    size = std::max<std::size_t>(1, size / 8);
  }
  ::close(fd);
  return path;
}

class JournalDiskFullE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "rp-e2e-jdisk-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    disk_ = pattern;
    if (::mount("tmpfs", disk_.c_str(), "tmpfs", 0, "size=16m") != 0) {
      fs::remove(disk_);
      GTEST_SKIP() << "cannot mount a tmpfs (needs root)";
    }
    mounted_ = true;
    fs::create_directories(disk_ / "journal");
  }
  void TearDown() override {
    if (mounted_) ::umount2(disk_.c_str(), MNT_DETACH);
    std::error_code ignored;
    fs::remove_all(disk_, ignored);
  }

  fs::path disk_;
  bool mounted_ = false;
};

TEST_F(JournalDiskFullE2E, AFullJournalDiskAnswers503AcknowledgesNothingAndRecovers) {
  ServerProcess server;
  fs::create_directories(server.data_dir());
  fs::create_symlink(disk_ / "journal", server.data_dir() / "journal");
  server.Start();
  ApiClient api(server);
  const std::int64_t sender = api.CreateFundedUser("sender", 1'000'000);
  std::vector<std::string> packets;
  for (int i = 0; i < 10; ++i) {
    packets.push_back(api.CreatePacket(
        sender,
        R"({"total_cents":10000,"count":100,"kind":"equal","greeting":"hi","expires_in_s":3600})"));
  }
  std::map<std::pair<std::string, std::int64_t>, std::int64_t> acknowledged;
  std::int64_t next_user = 1000;
  auto grab = [&](const std::string& packet) {
    const std::int64_t user = next_user++;
    const Reply reply = api.Post("/v1/packets/" + packet + "/grab", "", user);
    if (reply.status == 200) acknowledged[{packet, user}] = reply.Int("amount_cents");
    return reply;
  };
  for (int i = 0; i < 20; ++i) ASSERT_EQ(grab(packets[0]).status, 200);

  // Killed, the disk filled, restarted on it: it starts (recovery only truncates: the zeroed
  // space it cuts off the last segment is room again, which is filled too).
  server.Kill();
  const fs::path fill = Fill(disk_);
  server.Start();
  fs::create_directory(disk_ / "more");
  const fs::path more = Fill(disk_ / "more");
  ApiClient after(server);
  api = std::move(after);
  Reply refused;
  for (int i = 0; i < 800 && refused.status != 503; ++i) {
    const Reply reply = grab(packets[static_cast<std::size_t>(1 + i / 100)]);
    ASSERT_TRUE(reply.status == 200 || reply.status == 503) << Describe(reply);
    if (reply.status == 503) refused = reply;
  }
  ASSERT_EQ(refused.status, 503) << "the disk never filled: " << acknowledged.size()
                                 << " acknowledged, next user " << next_user;
  EXPECT_EQ(refused.String("message"), "the journal's disk is full; retry");
  const Reply ready = api.Get("/readyz");
  EXPECT_EQ(ready.status, 503) << Describe(ready);
  EXPECT_EQ(ready.at("checks").as_object().at("journal").as_string().find("stalled since"), 0u)
      << Describe(ready);
  // New grabs take no share meanwhile.
  for (int i = 0; i < 20; ++i) EXPECT_EQ(grab(packets[9]).status, 503);

  fs::remove(fill);
  fs::remove(more);
  const auto deadline = std::chrono::steady_clock::now() + Scaled(milliseconds(15000));
  while (api.Get("/readyz").status != 200) {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "still stalled with room on the disk";
    std::this_thread::sleep_for(milliseconds(50));
  }
  for (int i = 0; i < 20; ++i) EXPECT_EQ(grab(packets[9]).status, 200);
  ASSERT_EQ(server.Stop(), 0);

  server.Start();
  ApiClient last(server);
  for (const auto& [key, amount] : acknowledged) {
    const auto grabs = GrabsByUser(last.GetPacket(key.first, sender));
    ASSERT_TRUE(grabs.contains(key.second)) << "acknowledged grab lost: user " << key.second;
    EXPECT_EQ(grabs.at(key.second).amount_cents, amount);
  }
  ASSERT_EQ(server.Stop(), 0);
  const CommandResult audit = server.Audit();
  EXPECT_EQ(audit.exit_code, 0) << audit.output;
}

}  // namespace
}  // namespace redpacket::e2e
