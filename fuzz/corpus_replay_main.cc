// Replays the corpus of every fuzz target, then seeded mutations of each entry (bit flips,
// truncations, duplications, byte overwrites), so CI exercises the targets without libFuzzer.
// Each target's LLVMFuzzerTestOneInput is compiled under its own name (fuzz/CMakeLists.txt).
// Usage: fuzz_corpus_replay <target>=<corpus dir>...  (fails on an unknown target or empty dir)
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string_view>
#include <vector>

#define REDPACKET_FUZZ_TARGETS(X) \
  X(request_parser)               \
  X(request_fields)               \
  X(token)                        \
  X(journal)                      \
  X(redis_reply)                  \
  X(event_codec)

#define REDPACKET_DECLARE(name) extern "C" int FuzzOne_##name(const std::uint8_t* data, std::size_t size);
REDPACKET_FUZZ_TARGETS(REDPACKET_DECLARE)
#undef REDPACKET_DECLARE

namespace {

using FuzzOne = int (*)(const std::uint8_t*, std::size_t);

struct Target {
  std::string_view name;
  FuzzOne run;
};

#define REDPACKET_ENTRY(name) Target{#name, FuzzOne_##name},
constexpr Target kTargets[] = {REDPACKET_FUZZ_TARGETS(REDPACKET_ENTRY)};
#undef REDPACKET_ENTRY

std::size_t Replay(FuzzOne run, const std::filesystem::path& directory, std::mt19937_64& random) {
  std::size_t runs = 0;
  for (const auto& entry : std::filesystem::directory_iterator(directory)) {
    std::ifstream file(entry.path(), std::ios::binary);
    const std::vector<std::uint8_t> input((std::istreambuf_iterator<char>(file)), {});
    run(input.data(), input.size());
    ++runs;
    for (int mutation = 0; mutation < 2000; ++mutation) {
      std::vector<std::uint8_t> mutated = input;
      switch (random() % 4) {
        case 0:
          if (!mutated.empty()) mutated[random() % mutated.size()] ^= static_cast<std::uint8_t>(1u << (random() % 8));
          break;
        case 1:
          mutated.resize(mutated.empty() ? 0 : random() % mutated.size());
          break;
        case 2:
          mutated.insert(mutated.end(), input.begin(), input.end());
          break;
        default:
          if (!mutated.empty()) mutated[random() % mutated.size()] = static_cast<std::uint8_t>(random());
      }
      run(mutated.data(), mutated.size());
      ++runs;
    }
  }
  return runs;
}

}  // namespace

int main(int argc, char** argv) {
  std::mt19937_64 random(20261125);
  bool ok = argc > 1;
  for (int i = 1; i < argc; ++i) {
    const std::string_view argument(argv[i]);
    const auto equals = argument.find('=');
    const std::string_view name = argument.substr(0, equals);
    const Target* target = nullptr;
    for (const Target& candidate : kTargets) {
      if (candidate.name == name) target = &candidate;
    }
    if (equals == std::string_view::npos || target == nullptr) {
      std::fprintf(stderr, "unknown target in '%s' (want <target>=<corpus dir>)\n", argv[i]);
      return 2;
    }
    const std::size_t runs = Replay(target->run, std::filesystem::path(argument.substr(equals + 1)), random);
    std::printf("%-16s %zu inputs replayed, every property held\n", std::string(name).c_str(), runs);
    if (runs == 0) ok = false;
  }
  return ok ? 0 : 1;
}
