// Which durable write should a grab's reply wait for? A batch of grabs committed to SQLite
// (WAL, synchronous=FULL) versus the same batch appended to the local journal (one fdatasync).
// Run: build/release/bench/durability_benchmark  (numbers in docs/decisions.md)
#include <atomic>
#include <filesystem>
#include <latch>

#include <benchmark/benchmark.h>

#include "bench_support.h"
#include "bus/local/journal.h"
#include "ledger/sqlite/sqlite_ledger.h"

namespace redpacket {
namespace {

using bench::TempDir;

domain::LedgerEvent Grab(domain::PacketId packet, std::int64_t seq, domain::Cents amount) {
  domain::LedgerEvent event;
  event.packet_id = packet;
  event.user_id = 1000 + seq;
  event.amount_cents = amount;
  event.seq = seq;
  event.at_millis = 1;
  return event;
}

// One SQLite transaction per batch of `range(0)` grabs (what "write the ledger directly with
// group commit" costs per batch).
void BM_SqliteGroupCommit(benchmark::State& state) {
  const auto dir = TempDir("rp-bench-sqlite");
  auto ledger = ledger::OpenSqliteLedger(dir / "ledger.sqlite");
  if (!ledger->Migrate()) state.SkipWithError("migrate failed");
  const std::int64_t batch = state.range(0);
  constexpr std::int64_t kShares = 200'000;
  domain::PacketSpec spec;
  spec.sender_id = 1;
  spec.total_cents = kShares;
  spec.count = kShares;
  domain::PacketId packet_id = 0;
  std::int64_t seq = kShares;
  std::uint64_t position = 0;
  std::vector<domain::LedgerEvent> events;
  for (auto _ : state) {
    if (seq + batch > kShares) {  // a fresh packet, outside the timing
      state.PauseTiming();
      ledger->Deposit(1, kShares, "");
      auto packet = ledger->CreatePacket(spec, std::vector<domain::Cents>(kShares, 1), domain::Clock::now(),
                                         domain::Clock::now() + std::chrono::hours(1), "");
      if (!packet) state.SkipWithError(packet.error().message.c_str());
      packet_id = packet->packet_id;
      seq = 0;
      state.ResumeTiming();
    }
    events.clear();
    for (std::int64_t i = 0; i < batch; ++i) events.push_back(Grab(packet_id, ++seq, 1));
    if (!ledger->ApplyEvents(events, {{0, ++position}})) state.SkipWithError("apply failed");
  }
  state.SetItemsProcessed(state.iterations() * batch);
  std::filesystem::remove_all(dir);
}
BENCHMARK(BM_SqliteGroupCommit)->Arg(1)->Arg(64)->Arg(1024)->Unit(benchmark::kMicrosecond)->UseRealTime();

// The same batch appended to the journal; the iteration ends when the last one is durable.
void BM_JournalGroupCommit(benchmark::State& state) {
  const auto dir = TempDir("rp-bench-journal");
  bus::Journal journal({dir, 64u << 20, 4096});
  if (!journal.Recover(0)) state.SkipWithError("recover failed");
  journal.Start([](std::span<const bus::PositionedEvent>) {});
  const std::int64_t batch = state.range(0);
  std::int64_t seq = 0;
  for (auto _ : state) {
    std::latch durable(batch);
    for (std::int64_t i = 0; i < batch; ++i) journal.Append(Grab(1, ++seq, 1), [&durable] { durable.count_down(); });
    durable.wait();
  }
  journal.Stop();
  state.SetItemsProcessed(state.iterations() * batch);
  std::filesystem::remove_all(dir);
}
BENCHMARK(BM_JournalGroupCommit)->Arg(1)->Arg(64)->Arg(1024)->Unit(benchmark::kMicrosecond)->UseRealTime();

}  // namespace
}  // namespace redpacket
