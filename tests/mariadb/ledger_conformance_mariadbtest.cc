// The MariaDB ledger against real servers (scripts/mariadb; see tests/mariadb/CMakeLists.txt):
// the Ledger conformance suite on a fresh database per case, then what only a shared, replicated
// database has: concurrent writers on several connections, reads on the replica, a replica down.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "domain/clock.h"
#include "ledger/mariadb/mariadb_connection.h"
#include "ledger/mariadb/mariadb_ledger.h"
#include "tests/ledger/ledger_conformance.h"

namespace redpacket::ledger::testing {
namespace {

using domain::ErrorCode;

int PrimaryPort() {
  const char* port = std::getenv("REDPACKET_MARIADB_PORT");
  return port != nullptr ? std::atoi(port) : 3307;
}

MariaDbOptions PrimaryOptions(std::string database) {
  MariaDbOptions options;
  options.port = PrimaryPort();
  options.database = std::move(database);
  return options;
}

MariaDbOptions ReplicaOptions(std::string database) {
  MariaDbOptions options = PrimaryOptions(std::move(database));
  options.port += 1;
  return options;
}

// Runs scripts/mariadb with the fixture's environment (run dir and port).
void RunScript(const std::string& arguments) {
  const char* script = std::getenv("REDPACKET_MARIADB_SCRIPT");
  ASSERT_NE(script, nullptr) << "run through ctest (REDPACKET_MARIADB_SCRIPT is not set)";
  ASSERT_EQ(std::system(fmt::format("{} {}", script, arguments).c_str()), 0) << arguments;
}

// Each case has a database of its own, created empty by the app user (who may create databases
// named redpacket*) and dropped afterwards.
class MariaDbBackend final : public LedgerBackend {
 public:
  void SetUp() override {
    static int cases = 0;
    database_ = fmt::format("redpacket_test_{}_{}", ::getpid(), ++cases);
    Admin(fmt::format("DROP DATABASE IF EXISTS {}", database_), "");
    Admin(fmt::format("CREATE DATABASE {}", database_), "");
  }
  void TearDown() override { Admin(fmt::format("DROP DATABASE IF EXISTS {}", database_), ""); }
  std::unique_ptr<Ledger> Open() override { return OpenMariaDbLedger(options()); }
  void ExecuteBehindTheLedger(const std::string& sql) override { Admin(sql, database_); }

  MariaDbOptions options() const { return PrimaryOptions(database_); }
  MariaDbOptions replica_options() const { return ReplicaOptions(database_); }

 private:
  static void Admin(const std::string& sql, const std::string& database) {
    mariadb::Connection connection(PrimaryOptions(database));
    auto connected = connection.EnsureConnected();
    ASSERT_TRUE(connected.ok()) << connected.error().message;
    auto done = connection.Execute(sql);
    ASSERT_TRUE(done.ok()) << done.error().message;
  }

  std::string database_;
};

INSTANTIATE_TEST_SUITE_P(MariaDb, LedgerConformance,
                         ::testing::Values(LedgerBackendParam{
                             "mariadb", [] { return std::make_unique<MariaDbBackend>(); }}),
                         BackendName);

class MariaDbLedgerTest : public ::testing::Test, protected LedgerFixture {
 protected:
  void SetUp() override {
    auto backend = std::make_unique<MariaDbBackend>();
    mariadb_ = backend.get();
    StartCase(std::move(backend));
  }
  void TearDown() override { EndCase(); }

  // Retries what MariaDB may refuse under contention (deadlock, lock wait timeout).
  template <class Call>
  static auto Retrying(Call call) {
    for (int attempt = 1;; ++attempt) {
      auto result = call();
      if (result.ok() || result.error().code != ErrorCode::kUnavailable || attempt == 50) {
        return result;
      }
    }
  }

  // Polls a replica until it shows the balance (replication is asynchronous), for up to 20 s.
  static Result<Cents> WaitForBalance(Ledger& replica, UserId user_id, Cents expected) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (true) {
      auto balance = replica.Balance(user_id);
      if ((balance.ok() && *balance == expected) || std::chrono::steady_clock::now() > deadline) {
        return balance;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

  // A ledger on the replica, once the case's database has reached it (replication is
  // asynchronous: until then the connection is refused with "Unknown database").
  std::unique_ptr<Ledger> OpenReplica() {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (true) {
      try {
        return OpenMariaDbLedger(mariadb_->replica_options());
      } catch (const std::runtime_error& error) {
        if (std::chrono::steady_clock::now() > deadline) throw;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

  MariaDbBackend* mariadb_ = nullptr;
};

TEST_F(MariaDbLedgerTest, UnreachableServerThrowsAClearError) {
  MariaDbOptions options = mariadb_->options();
  options.port = 1;  // nothing listens there
  try {
    OpenMariaDbLedger(options);
    FAIL() << "opened a ledger on a closed port";
  } catch (const std::runtime_error& error) {
    EXPECT_TRUE(std::string(error.what()).starts_with("cannot reach MariaDB at 127.0.0.1:1: "))
        << error.what();
  }
}

TEST_F(MariaDbLedgerTest, ConcurrentCreatePacketNeverOverdraws) {
  ASSERT_TRUE(ledger_->Deposit(1, 1000, "").ok());
  constexpr int kThreads = 8;
  constexpr int kAttemptsPerThread = 5;
  std::atomic<int> created = 0;
  std::atomic<int> refused = 0;
  std::atomic<int> failed = 0;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      auto ledger = OpenMariaDbLedger(mariadb_->options());
      for (int i = 0; i < kAttemptsPerThread; ++i) {
        const std::vector<Cents> shares = {40, 60};
        auto packet = Retrying([&] {
          return ledger->CreatePacket(
              Spec(1, shares), shares, domain::FromUnixMillis(kCreatedAtMillis),
              domain::FromUnixMillis(kCreatedAtMillis + 60'000), fmt::format("t{}-{}", t, i));
        });
        if (packet.ok()) {
          ++created;
        } else if (packet.error().code == ErrorCode::kInsufficientFunds) {
          ++refused;
        } else {
          ++failed;
          ADD_FAILURE() << packet.error().message;
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(created, 10);  // 1000 cents, 100 a packet
  EXPECT_EQ(refused, kThreads * kAttemptsPerThread - 10);
  EXPECT_EQ(failed, 0);
  EXPECT_EQ(BalanceOf(1), 0);
  auto sent = ledger_->History(1, HistoryKind::kSent, 100, "");
  ASSERT_TRUE(sent.ok());
  EXPECT_EQ(sent->items.size(), 10u);
  ExpectConsistentAudit();
}

TEST_F(MariaDbLedgerTest, ConcurrentApplyOfOneBatchCreditsOnce) {
  std::vector<Cents> shares(200);
  for (std::size_t i = 0; i < shares.size(); ++i) shares[i] = 1 + static_cast<Cents>(i % 9);
  PacketRecord packet = CreatePacket(1, shares);
  std::vector<domain::LedgerEvent> events;
  for (std::int64_t seq = 1; seq <= 200; ++seq) {
    events.push_back(
        GrabEvent(packet.packet_id, 1000 + seq, shares[static_cast<std::size_t>(seq - 1)], seq));
  }
  std::vector<std::thread> threads;
  std::atomic<int> failures = 0;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&] {
      auto ledger = OpenMariaDbLedger(mariadb_->options());
      for (int round = 0; round < 3; ++round) {
        domain::Status status;
        for (int attempt = 0; attempt < 50; ++attempt) {
          status = ledger->ApplyEvents(events, At(200));
          if (status.ok() || status.error().code != ErrorCode::kUnavailable) break;
        }
        if (!status.ok()) {
          ++failures;
          ADD_FAILURE() << status.error().message;
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(failures, 0);
  for (const domain::LedgerEvent& event : events) {
    EXPECT_EQ(BalanceOf(event.user_id), event.amount_cents) << event.user_id;
  }
  PacketRecord stored = PacketOf(packet.packet_id);
  EXPECT_EQ(stored.grabs.size(), 200u);
  EXPECT_EQ(stored.status, domain::PacketStatus::kExhausted);
  EXPECT_EQ(AppliedPosition(), 200u);
  ExpectConsistentAudit();
}

TEST_F(MariaDbLedgerTest, ReplicaServesReadsAfterReplication) {
  PacketRecord packet = CreatePacket(1, {30, 70});
  ASSERT_TRUE(ledger_->ApplyEvents(std::vector{GrabEvent(packet.packet_id, 2, 70, 2)}, At(1)).ok());
  auto replica = OpenReplica();
  auto balance = WaitForBalance(*replica, 2, 70);
  // The schema replicated with the data: migrating a reader writes nothing, so it succeeds.
  auto migrated = replica->Migrate();
  EXPECT_TRUE(migrated.ok()) << migrated.error().message;
  ASSERT_TRUE(balance.ok()) << balance.error().message;
  EXPECT_EQ(*balance, 70);
  auto replicated = replica->GetPacket(packet.packet_id);
  ASSERT_TRUE(replicated.ok() && replicated->has_value());
  EXPECT_EQ((*replicated)->shares, (std::vector<Cents>{30, 70}));
  EXPECT_EQ((*replicated)->grabs.size(), 1u);
  auto history = replica->History(2, HistoryKind::kReceived, 10, "");
  ASSERT_TRUE(history.ok());
  EXPECT_EQ(history->items.size(), 1u);

  // The app user cannot write on the replica (read_only, not SUPER). A read-only server is the
  // machine's state, not the request's fault (a primary set read-only for maintenance or a
  // failover takes writes again): retryable, a 503 to a client, a stall of the worker.
  auto write = replica->Deposit(3, 5, "");
  ASSERT_FALSE(write.ok());
  EXPECT_EQ(write.error().code, ErrorCode::kUnavailable) << write.error().message;

  auto lag = ReplicaLagSeconds(mariadb_->replica_options());
  ASSERT_TRUE(lag.ok()) << lag.error().message;
  ASSERT_TRUE(lag->has_value());
  EXPECT_GE(**lag, 0);
  auto primary_lag = ReplicaLagSeconds(mariadb_->options());
  ASSERT_TRUE(primary_lag.ok()) << primary_lag.error().message;
  EXPECT_FALSE(primary_lag->has_value());  // the primary replicates from nobody
}

TEST_F(MariaDbLedgerTest, StoppedReplicaIsUnavailableThenReconnects) {
  ASSERT_TRUE(ledger_->Deposit(5, 50, "").ok());
  auto replica = OpenReplica();
  ReplicaLagProbe probe(mariadb_->replica_options());
  ASSERT_TRUE(probe.LagSeconds().ok());
  ASSERT_EQ(*WaitForBalance(*replica, 5, 50), 50);

  RunScript("stop replica");
  auto balance = replica->Balance(5);
  ASSERT_FALSE(balance.ok());
  EXPECT_EQ(balance.error().code, ErrorCode::kUnavailable) << balance.error().message;
  auto again = replica->GetPacket(1);  // a reconnect attempt, refused
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code, ErrorCode::kUnavailable);
  auto lag = probe.LagSeconds();
  ASSERT_FALSE(lag.ok());
  EXPECT_EQ(lag.error().code, ErrorCode::kUnavailable);
  const std::string expected =
      fmt::format("cannot reach MariaDB at 127.0.0.1:{}: ", PrimaryPort() + 1);
  try {
    OpenMariaDbLedger(mariadb_->replica_options());
    ADD_FAILURE() << "opened a ledger on a stopped replica";
  } catch (const std::runtime_error& error) {
    EXPECT_TRUE(std::string(error.what()).starts_with(expected)) << error.what();
  }
  // The primary is unaffected.
  EXPECT_EQ(BalanceOf(5), 50);

  ASSERT_TRUE(ledger_->Deposit(5, 1, "").ok());  // written while the replica is down

  RunScript("start replica");
  auto reconnected = WaitForBalance(*replica, 5, 51);  // reconnects, and replication caught up
  ASSERT_TRUE(reconnected.ok()) << reconnected.error().message;
  EXPECT_EQ(*reconnected, 51);
  EXPECT_TRUE(probe.LagSeconds().ok());
}

TEST_F(MariaDbLedgerTest, LostPrimaryConnectionIsRetryableAndReconnects) {
  ASSERT_TRUE(ledger_->Deposit(6, 60, "").ok());
  // Kill this ledger's own connection from another session: the next call sees it gone.
  mariadb::Connection admin(mariadb_->options());
  ASSERT_TRUE(admin.EnsureConnected().ok());
  auto ids = admin.Query(fmt::format(
      "SELECT id FROM information_schema.processlist WHERE db = '{}' AND id <> CONNECTION_ID()",
      mariadb_->options().database));
  ASSERT_TRUE(ids.ok()) << ids.error().message;
  int killed = 0;
  while (ids->Next()) {
    ASSERT_TRUE(admin.Execute(fmt::format("KILL CONNECTION {}", ids->Int(0))).ok());
    ++killed;
  }
  ASSERT_GE(killed, 1);
  auto lost = ledger_->Balance(6);
  ASSERT_FALSE(lost.ok());
  EXPECT_EQ(lost.error().code, ErrorCode::kUnavailable) << lost.error().message;
  EXPECT_EQ(BalanceOf(6), 60);  // reconnected
  EXPECT_EQ(*ledger_->Deposit(6, 1, ""), 61);
}

// Load intents (ledger.h): a create records one with its debit, a repeat does not; a lost
// packet's request is idempotent; the loader sees them oldest packet first until completed.
TEST_F(MariaDbLedgerTest, LoadIntentsAreRecordedWithTheDebitAndCompletedOnce) {
  const PacketRecord first = CreatePacket(1, {10, 20}, "p-intent");
  const PacketRecord second = CreatePacket(2, {30});
  EXPECT_FALSE(first.repeated);
  auto pending = ledger_->PendingLoads(10);
  ASSERT_TRUE(pending.ok()) << pending.error().message;
  EXPECT_EQ(*pending, (std::vector<PacketId>{first.packet_id, second.packet_id}));

  auto again = TryCreatePacket(first.spec, first.shares, "p-intent");
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->repeated) << "a repeat debits nothing and must not be loaded again";
  EXPECT_EQ(again->packet_id, first.packet_id);
  EXPECT_EQ(ledger_->PendingLoads(10)->size(), 2u);

  ASSERT_TRUE(ledger_->CompleteLoad(first.packet_id).ok());
  ASSERT_TRUE(ledger_->CompleteLoad(first.packet_id).ok()) << "completing twice is harmless";
  EXPECT_EQ(*ledger_->PendingLoads(10), std::vector<PacketId>{second.packet_id});
  ASSERT_TRUE(ledger_->RequestLoad(first.packet_id).ok());  // found lost later
  ASSERT_TRUE(ledger_->RequestLoad(first.packet_id).ok());
  EXPECT_EQ(*ledger_->PendingLoads(1), std::vector<PacketId>{first.packet_id});
  EXPECT_EQ(ledger_->PendingLoads(10)->size(), 2u);

  // Completed through a batch of writes, as the service does it.
  const std::vector<Write> writes{CompleteLoadWrite{first.packet_id},
                                  CompleteLoadWrite{second.packet_id}};
  for (const WriteResult& result : ledger_->WriteBatch(writes)) {
    ASSERT_TRUE(std::get<ledger::CompleteLoadWrite::Answer>(result).ok());
  }
  EXPECT_TRUE(ledger_->PendingLoads(10)->empty());
}

// Deposits and load requests record the time of MariaDbOptions::clock, not the system's.
TEST_F(MariaDbLedgerTest, DepositsAndLoadRequestsRecordTheInjectedClocksTime) {
  const domain::ManualTimeSource clock(domain::FromUnixMillis(1'900'000'000'000));  // 2030
  MariaDbOptions options = mariadb_->options();
  options.clock = &clock;
  auto ledger = OpenMariaDbLedger(options);
  ASSERT_TRUE(ledger->Deposit(1, 5, "").ok());
  ASSERT_TRUE(ledger->RequestLoad(424242).ok());
  mariadb::Connection connection(options);
  ASSERT_TRUE(connection.EnsureConnected().ok());
  for (const char* sql : {"SELECT created_at_ms FROM deposits",
                          "SELECT requested_at_ms FROM packet_loads WHERE packet_id = 424242"}) {
    auto rows = connection.Query(sql);
    ASSERT_TRUE(rows.ok()) << rows.error().message;
    ASSERT_TRUE(rows->Next()) << sql;
    EXPECT_EQ(rows->Int(0), 1'900'000'000'000) << sql;
  }
}

}  // namespace
}  // namespace redpacket::ledger::testing
