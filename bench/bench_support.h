// What the micro-benchmarks share.
#pragma once

#include <filesystem>

namespace redpacket::bench {

// A fresh, empty directory `name` under the system's temp directory.
inline std::filesystem::path TempDir(const char* name) {
  auto dir = std::filesystem::temp_directory_path() / name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

}  // namespace redpacket::bench
