// Replays a fuzz target's corpus, then seeded mutations of each entry (bit flips, truncations,
// duplications), so CI exercises the target without libFuzzer. Usage: replay <corpus dir>...
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

int main(int argc, char** argv) {
  std::mt19937_64 random(20261125);
  std::size_t runs = 0;
  for (int i = 1; i < argc; ++i) {
    for (const auto& entry : std::filesystem::directory_iterator(argv[i])) {
      std::ifstream file(entry.path(), std::ios::binary);
      const std::vector<std::uint8_t> input((std::istreambuf_iterator<char>(file)), {});
      LLVMFuzzerTestOneInput(input.data(), input.size());
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
        LLVMFuzzerTestOneInput(mutated.data(), mutated.size());
        ++runs;
      }
    }
  }
  std::printf("%zu inputs replayed without a crash\n", runs);
  return runs > 0 ? 0 : 1;
}
