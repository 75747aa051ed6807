// The Ledger contract, case by case, and the helpers every case shares. This file: accounts,
// deposits, packet creation, idempotency per request_id and group commit. The other cases are in
// ledger_conformance_events.cc (exactly-once application, set-aside messages),
// ledger_conformance_reads.cc (history, recovery reads, audit facts) and
// ledger_conformance_rules.cc (the money rules of domain/, answered alike by every ledger).
// Runs on every backend that instantiates LedgerConformance (see ledger_conformance.h).
#include "tests/ledger/ledger_conformance.h"

#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <limits>
#include <numeric>
#include <string>
#include <vector>

namespace redpacket::ledger::testing {

LedgerEvent GrabEvent(PacketId packet_id, UserId user_id, Cents amount, std::int64_t seq) {
  return LedgerEvent::Grab(packet_id, user_id, amount, seq, kCreatedAtMillis + seq);
}

LedgerEvent RefundEvent(PacketId packet_id, UserId sender_id, Cents amount) {
  return LedgerEvent::Refund(packet_id, sender_id, amount, kCreatedAtMillis + 86'400'000);
}

domain::PartitionOffsets At(std::uint64_t position) { return {{0, position}}; }

PacketSpec Spec(UserId sender_id, const std::vector<Cents>& shares) {
  PacketSpec spec;
  spec.sender_id = sender_id;
  spec.kind = PacketKind::kLucky;
  spec.total_cents = std::accumulate(shares.begin(), shares.end(), Cents{0});
  spec.count = static_cast<std::int64_t>(shares.size());
  spec.greeting = "恭喜发财";
  spec.expires_in_s = 86400;
  return spec;
}

void LedgerFixture::StartCase(std::unique_ptr<LedgerBackend> backend) {
  backend_ = std::move(backend);
  backend_->SetUp();
  ledger_ = Open();
  auto migrated = ledger_->Migrate();
  ASSERT_TRUE(migrated.ok()) << migrated.error().message;
}

void LedgerFixture::EndCase() {
  ledger_.reset();
  if (backend_) backend_->TearDown();
}

std::uint64_t LedgerFixture::AppliedPosition() {
  auto offsets = ledger_->AppliedOffsets();
  EXPECT_TRUE(offsets.ok());
  return offsets.ok() && offsets->contains(0) ? offsets->at(0) : 0;
}

Result<PacketRecord> LedgerFixture::TryCreatePacket(const PacketSpec& spec,
                                                    const std::vector<Cents>& shares,
                                                    std::string_view request_id) {
  return ledger_->CreatePacket(spec, shares, domain::FromUnixMillis(kCreatedAtMillis),
                               domain::FromUnixMillis(kCreatedAtMillis + 86'400'000), request_id);
}

PacketRecord LedgerFixture::CreatePacket(UserId sender_id, const std::vector<Cents>& shares,
                                         std::string_view request_id) {
  PacketSpec spec = Spec(sender_id, shares);
  EXPECT_TRUE(ledger_->Deposit(sender_id, spec.total_cents, "").ok());
  auto packet = TryCreatePacket(spec, shares, request_id);
  EXPECT_TRUE(packet.ok()) << packet.error().message;
  return packet.ok() ? *packet : PacketRecord{};
}

Cents LedgerFixture::BalanceOf(UserId user_id) {
  auto balance = ledger_->Balance(user_id);
  EXPECT_TRUE(balance.ok()) << balance.error().message;
  return balance.ok() ? *balance : -1;
}

PacketRecord LedgerFixture::PacketOf(PacketId packet_id) {
  auto packet = ledger_->GetPacket(packet_id);
  EXPECT_TRUE(packet.ok() && packet->has_value());
  return packet.ok() && packet->has_value() ? **packet : PacketRecord{};
}

void LedgerFixture::ExpectConsistentAudit() {
  auto facts = ledger_->ReadAuditFacts();
  ASSERT_TRUE(facts.ok()) << facts.error().message;
  EXPECT_TRUE(facts->account_mismatches.empty());
  Cents escrow = 0;
  for (const AuditFacts::Packet& packet : facts->packets) {
    Cents grabbed = 0;
    for (const domain::Grab& grab : packet.grabs) grabbed += grab.amount_cents;
    escrow += packet.total_cents - grabbed - packet.refund_cents.value_or(0);
  }
  EXPECT_EQ(facts->deposits_cents, facts->balances_cents + escrow);
}

TEST_P(LedgerConformance, MigrateIsIdempotent) {
  EXPECT_TRUE(ledger_->Migrate().ok());
  ASSERT_TRUE(ledger_->Deposit(7, 100, "").ok());
  ledger_ = Open();
  EXPECT_TRUE(ledger_->Migrate().ok());
  EXPECT_EQ(BalanceOf(7), 100);
  EXPECT_EQ(AppliedPosition(), 0u);
}

TEST_P(LedgerConformance, CreateUserTakesTheNextFreeId) {
  auto alice = ledger_->CreateUser("alice");
  auto bob = ledger_->CreateUser("bob");
  ASSERT_TRUE(alice.ok() && bob.ok());
  EXPECT_EQ(alice->user_id, 1);
  EXPECT_EQ(alice->name, "alice");
  EXPECT_EQ(alice->balance_cents, 0);
  EXPECT_EQ(bob->user_id, 2);

  // A grab may create an account with any id: the next user skips the ids accounts hold.
  PacketRecord packet = CreatePacket(1, {5, 5});
  ASSERT_TRUE(ledger_
                  ->ApplyEvents(std::vector{GrabEvent(packet.packet_id, 3, 5, 1),
                                            GrabEvent(packet.packet_id, 4, 5, 2)},
                                At(2))
                  .ok());
  auto carol = ledger_->CreateUser("carol");
  ASSERT_TRUE(carol.ok());
  EXPECT_EQ(carol->user_id, 5);
  EXPECT_EQ(BalanceOf(3), 5);  // untouched
}

// A bug once found (docs/decisions.md §29, "Bad input and limits"): an admin deposit to
// 2^53 - 1 made every later CreateUser fail (max + 1, or MariaDB's AUTO_INCREMENT moved past the
// explicit id).
TEST_P(LedgerConformance, AnIdNamedByADepositOrAGrabNeverBlocksCreateUser) {
  ASSERT_TRUE(ledger_->Deposit(domain::kMaxUserId, 1, "").ok());
  ASSERT_TRUE(ledger_->Deposit(1000, 1, "").ok());
  auto alice = ledger_->CreateUser("alice");
  ASSERT_TRUE(alice.ok()) << alice.error().message;
  EXPECT_EQ(alice->user_id, 1);
  // Explicit ids ahead of the counter are skipped when it gets there, never reused.
  ASSERT_TRUE(ledger_->Deposit(2, 1, "").ok());
  ASSERT_TRUE(ledger_->Deposit(3, 1, "").ok());
  auto bob = ledger_->CreateUser("bob");
  ASSERT_TRUE(bob.ok()) << bob.error().message;
  EXPECT_EQ(bob->user_id, 4);
  ledger_ = Open();  // the counter is durable, not a connection's
  auto carol = ledger_->CreateUser("carol");
  ASSERT_TRUE(carol.ok()) << carol.error().message;
  EXPECT_EQ(carol->user_id, 5);
  EXPECT_EQ(BalanceOf(domain::kMaxUserId), 1);
  EXPECT_EQ(BalanceOf(2), 1);
  ExpectConsistentAudit();
}

// All the money in the system stays at most 2^53 - 1 cents: no balance and no credit can pass
// it, so a grab acknowledged with 200 is never refused by the ledger for an overflow.
TEST_P(LedgerConformance, DepositsNeverTotalMoreThanTheMostMoneyTheSystemHolds) {
  constexpr Cents kMax = domain::kMaxTotalDepositsCents;
  ASSERT_TRUE(ledger_->Deposit(1, kMax - 10, "d-1").ok());
  auto over = ledger_->Deposit(2, 11, "d-2");
  ASSERT_FALSE(over.ok());
  EXPECT_EQ(over.error().code, ErrorCode::kBadRequest);
  EXPECT_NE(over.error().message.find("9007199254740991"), std::string::npos)
      << over.error().message;
  EXPECT_EQ(BalanceOf(2), 0);  // refused whole: nothing written, the request_id is still free
  EXPECT_EQ(*ledger_->Deposit(2, 10, "d-2"), 10);  // exactly up to the bound
  EXPECT_EQ(ledger_->Deposit(3, 1, "").error().code, ErrorCode::kBadRequest);
  EXPECT_EQ(*ledger_->Deposit(1, kMax - 10, "d-1"), kMax - 10);  // a repeat: the first answer
  // In a group commit too, each write as if alone.
  std::vector<Write> writes{DepositWrite{4, 1, ""}, CreateUserWrite{"zoe"}};
  std::vector<WriteResult> results = ledger_->WriteBatch(writes);
  EXPECT_EQ(std::get<ledger::DepositWrite::Answer>(results[0]).error().code,
            ErrorCode::kBadRequest);
  EXPECT_TRUE(std::get<ledger::CreateUserWrite::Answer>(results[1]).ok());
  // Money moves, it is never made: a packet and its grabs change no total.
  PacketRecord packet;
  {
    auto created = TryCreatePacket(Spec(1, {kMax - 10}), {kMax - 10});
    ASSERT_TRUE(created.ok()) << created.error().message;
    packet = *created;
  }
  ASSERT_TRUE(
      ledger_->ApplyEvents(std::vector{GrabEvent(packet.packet_id, 2, kMax - 10, 1)}, At(1)).ok());
  EXPECT_EQ(BalanceOf(2), kMax);
  auto facts = ledger_->ReadAuditFacts();
  ASSERT_TRUE(facts.ok());
  EXPECT_EQ(facts->deposits_cents, kMax);
  ExpectConsistentAudit();
}

TEST_P(LedgerConformance, DepositIsIdempotentPerRequestId) {
  EXPECT_EQ(*ledger_->Deposit(1, 500, "r-1"), 500);
  EXPECT_EQ(*ledger_->Deposit(1, 500, "r-1"), 500);  // a repeat: the first answer
  // The same request_id with another amount is another request: refused, nothing credited.
  EXPECT_EQ(ledger_->Deposit(1, 999, "r-1").error().code, ErrorCode::kIdempotencyConflict);
  EXPECT_EQ(BalanceOf(1), 500);
  EXPECT_EQ(*ledger_->Deposit(1, 100, "r-2"), 600);
  EXPECT_EQ(*ledger_->Deposit(2, 100, "r-1"), 100);  // the key is per user
  EXPECT_EQ(*ledger_->Deposit(1, 1, ""), 601);       // no request id: not idempotent
  EXPECT_EQ(*ledger_->Deposit(1, 1, ""), 602);
  EXPECT_EQ(BalanceOf(1), 602);
  EXPECT_EQ(BalanceOf(3), 0);  // never seen

  EXPECT_EQ(ledger_->Deposit(1, 0, "").error().code, ErrorCode::kBadRequest);
  EXPECT_EQ(ledger_->Deposit(0, 10, "").error().code, ErrorCode::kBadRequest);
  EXPECT_EQ(ledger_->Deposit(1, std::numeric_limits<Cents>::max(), "").error().code,
            ErrorCode::kBadRequest);
  EXPECT_EQ(BalanceOf(1), 602);
  ExpectConsistentAudit();
}

TEST_P(LedgerConformance, CreatePacketDebitsTheSender) {
  ASSERT_TRUE(ledger_->Deposit(1, 1000, "").ok());
  const std::vector<Cents> shares = {300, 100, 200};
  auto packet =
      ledger_->CreatePacket(Spec(1, shares), shares, domain::FromUnixMillis(kCreatedAtMillis),
                            domain::FromUnixMillis(kCreatedAtMillis + 60'000), "");
  ASSERT_TRUE(packet.ok()) << packet.error().message;
  EXPECT_EQ(packet->packet_id, 1);
  EXPECT_EQ(packet->status, PacketStatus::kOpen);
  EXPECT_EQ(BalanceOf(1), 400);

  PacketRecord stored = PacketOf(1);
  EXPECT_EQ(stored.spec.sender_id, 1);
  EXPECT_EQ(stored.spec.greeting, "恭喜发财");
  EXPECT_EQ(stored.spec.total_cents, 600);
  EXPECT_EQ(stored.spec.count, 3);
  EXPECT_FALSE(stored.spec.receiver_id.has_value());
  EXPECT_EQ(stored.shares, shares);
  EXPECT_EQ(domain::ToUnixMillis(stored.created_at), kCreatedAtMillis);
  EXPECT_EQ(domain::ToUnixMillis(stored.expires_at), kCreatedAtMillis + 60'000);
  EXPECT_TRUE(stored.grabs.empty());
  EXPECT_FALSE(stored.refund_cents.has_value());
  EXPECT_EQ(CreatePacket(1, {1}).packet_id, 2);

  auto unknown = ledger_->GetPacket(99);
  ASSERT_TRUE(unknown.ok());
  EXPECT_FALSE(unknown->has_value());
}

TEST_P(LedgerConformance, ExclusivePacketKeepsItsReceiver) {
  ASSERT_TRUE(ledger_->Deposit(1, 50, "").ok());
  PacketSpec spec = Spec(1, {50});
  spec.kind = PacketKind::kEqual;
  spec.receiver_id = 42;
  ASSERT_TRUE(TryCreatePacket(spec, {50}).ok());
  PacketRecord stored = PacketOf(1);
  EXPECT_EQ(stored.spec.kind, PacketKind::kEqual);
  EXPECT_EQ(stored.spec.receiver_id, std::optional<UserId>(42));
}

TEST_P(LedgerConformance, InsufficientFundsWritesNothing) {
  ASSERT_TRUE(ledger_->Deposit(1, 100, "").ok());
  auto refused = TryCreatePacket(Spec(1, {60, 60}), {60, 60}, "create-1");
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, ErrorCode::kInsufficientFunds);
  EXPECT_EQ(refused.error().message, "balance is 100 cents, the packet needs 120");
  EXPECT_EQ(BalanceOf(1), 100);
  EXPECT_FALSE(ledger_->GetPacket(1)->has_value());

  // A sender without an account has balance 0.
  auto nobody = TryCreatePacket(Spec(9, {1}), {1});
  EXPECT_EQ(nobody.error().code, ErrorCode::kInsufficientFunds);
  EXPECT_EQ(nobody.error().message, "balance is 0 cents, the packet needs 1");

  // The refused request id was not consumed: after a deposit the same request succeeds.
  ASSERT_TRUE(ledger_->Deposit(1, 20, "").ok());
  auto accepted = TryCreatePacket(Spec(1, {60, 60}), {60, 60}, "create-1");
  ASSERT_TRUE(accepted.ok());
  EXPECT_EQ(accepted->packet_id, 1);
  EXPECT_EQ(BalanceOf(1), 0);
  ExpectConsistentAudit();
}

TEST_P(LedgerConformance, SharesThatDoNotMatchThePacketAreRefused) {
  ASSERT_TRUE(ledger_->Deposit(1, 100, "").ok());
  PacketSpec spec = Spec(1, {50, 50});
  for (const std::vector<Cents>& shares :
       {std::vector<Cents>{50}, std::vector<Cents>{60, 50}, std::vector<Cents>{100, 0}}) {
    EXPECT_FALSE(TryCreatePacket(spec, shares).ok());
  }
  EXPECT_EQ(BalanceOf(1), 100);
}

TEST_P(LedgerConformance, CreatePacketIsIdempotentPerRequestId) {
  PacketRecord first = CreatePacket(1, {10, 20}, "req-a");
  ASSERT_TRUE(ledger_->Deposit(1, 1000, "").ok());
  auto repeat = TryCreatePacket(Spec(1, {10, 20}), {10, 20}, "req-a");
  ASSERT_TRUE(repeat.ok());
  EXPECT_EQ(repeat->packet_id, first.packet_id);
  EXPECT_EQ(repeat->shares, first.shares);
  EXPECT_EQ(BalanceOf(1), 1000);  // debited once

  // The same request_id with another spec is refused and debits nothing.
  auto changed = TryCreatePacket(Spec(1, {10, 20, 5}), {10, 20, 5}, "req-a");
  ASSERT_FALSE(changed.ok());
  EXPECT_EQ(changed.error().code, ErrorCode::kIdempotencyConflict);
  EXPECT_EQ(BalanceOf(1), 1000);

  // The same request id from another sender is another request.
  ASSERT_TRUE(ledger_->Deposit(2, 30, "").ok());
  auto other = TryCreatePacket(Spec(2, {10, 20}), {10, 20}, "req-a");
  ASSERT_TRUE(other.ok());
  EXPECT_NE(other->packet_id, first.packet_id);
  ExpectConsistentAudit();
}

// Group commit: a batch of writes answers each one as if it ran alone. A failing write (402,
// 409, a bad request) changes nothing and fails nothing else; a later write sees the earlier ones
// (a request_id repeated inside the batch is answered as a repeat, a debit is checked against the
// balance the earlier writes left).
TEST_P(LedgerConformance, WriteBatchAnswersEachWriteAsIfAlone) {
  auto create = [](UserId sender, const std::vector<Cents>& shares, std::string request_id) {
    CreatePacketWrite write;
    write.spec = Spec(sender, shares);
    write.shares = shares;
    write.created_at = domain::FromUnixMillis(kCreatedAtMillis);
    write.expires_at = domain::FromUnixMillis(kCreatedAtMillis + 60'000);
    write.request_id = std::move(request_id);
    return Write(std::move(write));
  };
  const std::vector<Write> writes = {
      DepositWrite{1, 100, "d-1"},  // 0 -> 100
      create(1, {30, 30}, "p-1"),   // 100 -> 40
      create(1, {30, 30}, "p-1"),   // a repeat inside the batch: the same packet, no debit
      create(1, {25, 25}, "p-2"),   // 40 < 50: 402, and nothing else fails
      DepositWrite{1, 100, "d-1"},  // a repeat: the first answer (100), nothing credited
      DepositWrite{1, 7, "d-1"},    // the same request_id, another amount: 409
      DepositWrite{0, 5, ""},       // a bad request
      create(1, {20, 20}, ""),      // 40 -> 0
      CreateUserWrite{"carol"},     // a new user
      DepositWrite{2, 9, ""},
  };
  std::vector<WriteResult> results = ledger_->WriteBatch(writes);
  ASSERT_EQ(results.size(), writes.size());
  EXPECT_EQ(*std::get<ledger::DepositWrite::Answer>(results[0]), 100);
  auto& first = std::get<ledger::CreatePacketWrite::Answer>(results[1]);
  ASSERT_TRUE(first.ok()) << first.error().message;
  auto& repeat = std::get<ledger::CreatePacketWrite::Answer>(results[2]);
  ASSERT_TRUE(repeat.ok()) << repeat.error().message;
  EXPECT_EQ(repeat->packet_id, first->packet_id);
  EXPECT_EQ(std::get<ledger::CreatePacketWrite::Answer>(results[3]).error().code,
            ErrorCode::kInsufficientFunds);
  EXPECT_EQ(*std::get<ledger::DepositWrite::Answer>(results[4]), 100);
  EXPECT_EQ(std::get<ledger::DepositWrite::Answer>(results[5]).error().code,
            ErrorCode::kIdempotencyConflict);
  EXPECT_EQ(std::get<ledger::DepositWrite::Answer>(results[6]).error().code,
            ErrorCode::kBadRequest);
  auto& last = std::get<ledger::CreatePacketWrite::Answer>(results[7]);
  ASSERT_TRUE(last.ok()) << last.error().message;
  EXPECT_NE(last->packet_id, first->packet_id);
  ASSERT_TRUE(std::get<ledger::CreateUserWrite::Answer>(results[8]).ok());
  EXPECT_EQ(*std::get<ledger::DepositWrite::Answer>(results[9]), 9);

  // After a restart (nothing cached): exactly what the answers said.
  ledger_ = Open();
  EXPECT_EQ(BalanceOf(1), 0);
  EXPECT_EQ(BalanceOf(2), 9);
  EXPECT_EQ(PacketOf(first->packet_id).shares, (std::vector<Cents>{30, 30}));
  EXPECT_FALSE(ledger_->GetPacket(last->packet_id + 1)->has_value());
  // The refused p-2 did not consume its request_id.
  ASSERT_TRUE(ledger_->Deposit(1, 50, "").ok());
  EXPECT_TRUE(TryCreatePacket(Spec(1, {25, 25}), {25, 25}, "p-2").ok());
  ExpectConsistentAudit();
}

GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(LedgerConformance);

}  // namespace redpacket::ledger::testing
