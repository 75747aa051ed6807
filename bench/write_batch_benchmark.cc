// Creates committed one transaction each (before group commit) versus `range(0)` creates in one
// LedgerWriter::WriteBatch (a savepoint each, one commit): wall and CPU per create on SQLite
// (WAL, synchronous=FULL). Run: build/release/bench/write_batch_benchmark (numbers in
// docs/decisions.md).
#include <filesystem>
#include <vector>

#include <benchmark/benchmark.h>

#include "bench_support.h"
#include "ledger/sqlite/sqlite_ledger.h"

namespace redpacket {
namespace {

using bench::TempDir;

ledger::CreatePacketWrite Create(std::int64_t n) {
  ledger::CreatePacketWrite write;
  write.spec.sender_id = 1;
  write.spec.total_cents = 100;
  write.spec.count = 10;
  write.shares = std::vector<domain::Cents>(10, 10);
  write.created_at = domain::Clock::now();
  write.expires_at = write.created_at + std::chrono::hours(1);
  write.request_id = "bench-" + std::to_string(n);  // with a request_id, as clients send them
  return write;
}

std::unique_ptr<ledger::Ledger> Funded(const std::filesystem::path& dir) {
  auto ledger = ledger::OpenSqliteLedger(dir / "ledger.sqlite");
  if (!ledger->Migrate() || !ledger->Deposit(1, 1'000'000'000'000, "").ok()) return nullptr;
  return ledger;
}

void BM_CreatesOneTransactionEach(benchmark::State& state) {
  const auto dir = TempDir("rp-bench-creates-each");
  auto ledger = Funded(dir);
  if (!ledger) return state.SkipWithError("setup failed");
  const std::int64_t batch = state.range(0);
  std::int64_t n = 0;
  for (auto _ : state) {
    for (std::int64_t i = 0; i < batch; ++i) {
      const auto write = Create(++n);
      if (!ledger->CreatePacket(write.spec, write.shares, write.created_at, write.expires_at,
                                write.request_id)) {
        state.SkipWithError("create failed");
      }
    }
  }
  state.SetItemsProcessed(state.iterations() * batch);
  std::filesystem::remove_all(dir);
}
BENCHMARK(BM_CreatesOneTransactionEach)->Arg(64)->Unit(benchmark::kMicrosecond)->UseRealTime();

void BM_CreatesInOneWriteBatch(benchmark::State& state) {
  const auto dir = TempDir("rp-bench-creates-batch");
  auto ledger = Funded(dir);
  if (!ledger) return state.SkipWithError("setup failed");
  const std::int64_t batch = state.range(0);
  std::int64_t n = 0;
  std::vector<ledger::Write> writes;
  for (auto _ : state) {
    writes.clear();
    for (std::int64_t i = 0; i < batch; ++i) writes.emplace_back(Create(++n));
    for (auto& result : ledger->WriteBatch(writes)) {
      if (!std::get<2>(result).ok()) state.SkipWithError("create failed");
    }
  }
  state.SetItemsProcessed(state.iterations() * batch);
  std::filesystem::remove_all(dir);
}
BENCHMARK(BM_CreatesInOneWriteBatch)->Arg(1)->Arg(64)->Arg(512)->Unit(benchmark::kMicrosecond)->UseRealTime();

}  // namespace
}  // namespace redpacket
