// The Ledger contract, case by case: idempotency, exactly-once application of events, status
// transitions, history paging, recovery reads and audit facts. Runs on every backend that
// instantiates LedgerConformance (see ledger_conformance.h).
#include "tests/ledger/ledger_conformance.h"

#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <limits>
#include <numeric>
#include <string>
#include <vector>

namespace redpacket::ledger::testing {

using domain::ErrorCode;
using domain::LedgerEvent;
using domain::PacketKind;
using domain::PacketSpec;
using domain::PacketStatus;

LedgerEvent GrabEvent(PacketId packet_id, UserId user_id, Cents amount, std::int64_t seq) {
  return LedgerEvent{.type = LedgerEvent::Type::kGrab,
                     .packet_id = packet_id,
                     .user_id = user_id,
                     .amount_cents = amount,
                     .seq = seq,
                     .at_millis = kCreatedAtMillis + seq};
}

LedgerEvent RefundEvent(PacketId packet_id, UserId sender_id, Cents amount) {
  return LedgerEvent{.type = LedgerEvent::Type::kRefund,
                     .packet_id = packet_id,
                     .user_id = sender_id,
                     .amount_cents = amount,
                     .seq = 0,
                     .at_millis = kCreatedAtMillis + 86'400'000};
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
  ASSERT_TRUE(ledger_->ApplyEvents(std::vector{GrabEvent(packet.packet_id, 3, 5, 1),
                                               GrabEvent(packet.packet_id, 4, 5, 2)},
                                   At(2))
                  .ok());
  auto carol = ledger_->CreateUser("carol");
  ASSERT_TRUE(carol.ok());
  EXPECT_EQ(carol->user_id, 5);
  EXPECT_EQ(BalanceOf(3), 5);  // untouched
}

// Part 5 of issue 14: an admin deposit to 2^53 - 1 made every later CreateUser fail (max + 1,
// or MariaDB's AUTO_INCREMENT moved past the explicit id).
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
  EXPECT_EQ(std::get<1>(results[0]).error().code, ErrorCode::kBadRequest);
  EXPECT_TRUE(std::get<0>(results[1]).ok());
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
      DepositWrite{1, 100, "d-1"},
      create(1, {30, 30}, "p-1"),       // 100 -> 40
      create(1, {30, 30}, "p-1"),       // a repeat inside the batch: the same packet, no debit
      create(1, {25, 25}, "p-2"),       // 40 < 50: 402, and nothing else fails
      DepositWrite{1, 100, "d-1"},      // a repeat: the first answer (100), nothing credited
      DepositWrite{1, 7, "d-1"},        // the same request_id, another amount: 409
      DepositWrite{0, 5, ""},           // a bad request
      create(1, {20, 20}, ""),          // 40 -> 0
      CreateUserWrite{"carol"},
      DepositWrite{2, 9, ""},
  };
  std::vector<WriteResult> results = ledger_->WriteBatch(writes);
  ASSERT_EQ(results.size(), writes.size());
  EXPECT_EQ(*std::get<1>(results[0]), 100);
  auto& first = std::get<2>(results[1]);
  ASSERT_TRUE(first.ok()) << first.error().message;
  auto& repeat = std::get<2>(results[2]);
  ASSERT_TRUE(repeat.ok()) << repeat.error().message;
  EXPECT_EQ(repeat->packet_id, first->packet_id);
  EXPECT_EQ(std::get<2>(results[3]).error().code, ErrorCode::kInsufficientFunds);
  EXPECT_EQ(*std::get<1>(results[4]), 100);
  EXPECT_EQ(std::get<1>(results[5]).error().code, ErrorCode::kIdempotencyConflict);
  EXPECT_EQ(std::get<1>(results[6]).error().code, ErrorCode::kBadRequest);
  auto& last = std::get<2>(results[7]);
  ASSERT_TRUE(last.ok()) << last.error().message;
  EXPECT_NE(last->packet_id, first->packet_id);
  ASSERT_TRUE(std::get<0>(results[8]).ok());
  EXPECT_EQ(*std::get<1>(results[9]), 9);

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

TEST_P(LedgerConformance, BalanceWithOffsetsReadsOneSnapshot) {
  PacketRecord packet = CreatePacket(1, {10, 20});
  ASSERT_TRUE(ledger_->ApplyEvents(std::vector{GrabEvent(packet.packet_id, 7, 10, 1)}, At(3)).ok());
  auto snapshot = Open()->BalanceWithOffsets(7);
  ASSERT_TRUE(snapshot.ok()) << snapshot.error().message;
  EXPECT_EQ(snapshot->balance_cents, 10);
  // A ledger that records offsets reports them with the balance.
  if (!snapshot->applied_offsets.empty()) EXPECT_EQ(snapshot->applied_offsets.at(0), 3u);
}

TEST_P(LedgerConformance, ApplyEventsIsExactlyOnce) {
  PacketRecord packet = CreatePacket(1, {10, 20, 30, 40, 50});
  const PacketId id = packet.packet_id;
  const std::vector<LedgerEvent> first = {GrabEvent(id, 11, 10, 1), GrabEvent(id, 12, 20, 2),
                                          GrabEvent(id, 13, 30, 3)};
  ASSERT_TRUE(ledger_->ApplyEvents(first, At(3)).ok());
  ASSERT_TRUE(ledger_->ApplyEvents(first, At(3)).ok());  // the same batch again: changes nothing
  EXPECT_EQ(BalanceOf(11), 10);
  EXPECT_EQ(BalanceOf(12), 20);
  EXPECT_EQ(BalanceOf(13), 30);
  EXPECT_EQ(AppliedPosition(), 3u);

  // Overlapping: positions 2..5, of which 2 and 3 were applied.
  const std::vector<LedgerEvent> overlapping = {GrabEvent(id, 12, 20, 2), GrabEvent(id, 13, 30, 3),
                                                GrabEvent(id, 14, 40, 4), GrabEvent(id, 15, 50, 5)};
  ASSERT_TRUE(ledger_->ApplyEvents(overlapping, At(5)).ok());
  EXPECT_EQ(BalanceOf(12), 20);
  EXPECT_EQ(BalanceOf(13), 30);
  EXPECT_EQ(BalanceOf(14), 40);
  EXPECT_EQ(BalanceOf(15), 50);
  EXPECT_EQ(AppliedPosition(), 5u);

  // Replaying an old span (crash recovery) never moves the position back.
  ASSERT_TRUE(ledger_->ApplyEvents(first, At(3)).ok());
  EXPECT_EQ(AppliedPosition(), 5u);

  PacketRecord stored = PacketOf(id);
  ASSERT_EQ(stored.grabs.size(), 5u);
  for (std::size_t i = 0; i < stored.grabs.size(); ++i) {
    EXPECT_EQ(stored.grabs[i].seq, static_cast<std::int64_t>(i + 1));
    EXPECT_EQ(stored.grabs[i].user_id, static_cast<UserId>(11 + i));
    EXPECT_EQ(stored.grabs[i].amount_cents, stored.shares[i]);
    EXPECT_EQ(domain::ToUnixMillis(stored.grabs[i].grabbed_at),
              kCreatedAtMillis + static_cast<std::int64_t>(i + 1));
  }
  EXPECT_EQ(stored.status, PacketStatus::kExhausted);
  ExpectConsistentAudit();
}

TEST_P(LedgerConformance, AnEmptySpanOnlyRecordsThePosition) {
  ASSERT_TRUE(ledger_->ApplyEvents({}, At(42)).ok());
  EXPECT_EQ(AppliedPosition(), 42u);
}

TEST_P(LedgerConformance, StatusMovesToExhaustedThenStays) {
  PacketRecord packet = CreatePacket(1, {7, 3});
  ASSERT_TRUE(ledger_->ApplyEvents(std::vector{GrabEvent(packet.packet_id, 2, 7, 1)}, At(1)).ok());
  EXPECT_EQ(PacketOf(packet.packet_id).status, PacketStatus::kOpen);
  ASSERT_TRUE(ledger_->ApplyEvents(std::vector{GrabEvent(packet.packet_id, 3, 3, 2)}, At(2)).ok());
  EXPECT_EQ(PacketOf(packet.packet_id).status, PacketStatus::kExhausted);
  ExpectConsistentAudit();
}

TEST_P(LedgerConformance, RefundCreditsTheSenderOnce) {
  PacketRecord packet = CreatePacket(1, {5, 6, 9});
  const PacketId id = packet.packet_id;
  const std::vector<LedgerEvent> events = {GrabEvent(id, 2, 6, 2), RefundEvent(id, 1, 14)};
  ASSERT_TRUE(ledger_->ApplyEvents(events, At(2)).ok());
  ASSERT_TRUE(ledger_->ApplyEvents(std::vector{RefundEvent(id, 1, 14)}, At(3)).ok());  // a repeat
  EXPECT_EQ(BalanceOf(1), 14);
  EXPECT_EQ(BalanceOf(2), 6);
  PacketRecord stored = PacketOf(id);
  EXPECT_EQ(stored.status, PacketStatus::kRefunded);
  EXPECT_EQ(stored.refund_cents, std::optional<Cents>(14));
  ExpectConsistentAudit();

  auto unfinished = ledger_->LoadUnfinishedPackets();
  ASSERT_TRUE(unfinished.ok());
  EXPECT_TRUE(unfinished->empty());
}

TEST_P(LedgerConformance, CorruptEventsFailTheWholeBatch) {
  PacketRecord packet = CreatePacket(1, {5, 6});
  const PacketId id = packet.packet_id;
  const std::vector<std::vector<LedgerEvent>> corrupt = {
      {GrabEvent(id, 2, 5, 1), GrabEvent(99, 3, 5, 1)},  // unknown packet
      {GrabEvent(id, 2, 5, 1), GrabEvent(id, 3, 5, 2)},  // amount is not shares[seq - 1]
      {GrabEvent(id, 2, 5, 1), GrabEvent(id, 3, 5, 3)},  // seq past the count
      {GrabEvent(id, 2, 5, 1), GrabEvent(id, 3, 5, 1)},  // two users, one share
      {GrabEvent(id, 2, 5, 1), RefundEvent(id, 4, 6)},   // refund to someone else
      {GrabEvent(id, 2, 5, 1), RefundEvent(id, 1, 7)},   // refund more than the rest
  };
  for (const auto& events : corrupt) {
    Status status = ledger_->ApplyEvents(events, At(2));
    ASSERT_FALSE(status.ok());
    // The rules refuse the event: the worker sets it aside (any other failure it retries).
    EXPECT_EQ(status.error().code, ErrorCode::kRefused) << status.error().message;
    // Rolled back: the valid first event was not applied either.
    EXPECT_EQ(BalanceOf(2), 0) << status.error().message;
    EXPECT_EQ(AppliedPosition(), 0u);
  }
  ExpectConsistentAudit();
}

TEST_P(LedgerConformance, AnotherUserOnAnAppliedShareFailsTheBatch) {
  PacketRecord packet = CreatePacket(1, {5, 6});
  const PacketId id = packet.packet_id;
  ASSERT_TRUE(ledger_->ApplyEvents(std::vector{GrabEvent(id, 2, 5, 1)}, At(1)).ok());
  // The same grab again is a repeat; user 3 on the share user 2 already took is a contradiction.
  Status status = ledger_->ApplyEvents(
      std::vector{GrabEvent(id, 4, 6, 2), GrabEvent(id, 2, 5, 1), GrabEvent(id, 3, 5, 1)}, At(4));
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().code, ErrorCode::kRefused) << status.error().message;
  EXPECT_EQ(BalanceOf(4), 0);  // rolled back with the rest of the batch
  EXPECT_EQ(BalanceOf(3), 0);
  EXPECT_EQ(BalanceOf(2), 5);
  EXPECT_EQ(AppliedPosition(), 1u);
  EXPECT_EQ(PacketOf(id).grabs.size(), 1u);
  ExpectConsistentAudit();
}

TEST_P(LedgerConformance, SetAsideKeepsTheMessageWholeAndMovesThePositionWithIt) {
  PacketRecord packet = CreatePacket(1, {5, 6});
  ASSERT_TRUE(
      ledger_->ApplyEvents(std::vector{GrabEvent(packet.packet_id, 2, 5, 1)}, At(1)).ok());
  const std::string payload =
      R"({"type":"grab","event_id":"g-99-3","packet_id":"99","user_id":3,"amount_cents":5,)"
      R"("seq":1,"at":"2023-11-14T22:13:20.001Z"})";
  const SetAsideRecord record{.partition = 0,
                              .offset = 2,
                              .event_id = "g-99-3",
                              .payload = payload,
                              .reason = "event g-99-3: grab of an unknown packet",
                              .at = domain::FromUnixMillis(kCreatedAtMillis)};
  ASSERT_TRUE(ledger_->SetAside(record, At(2)).ok());
  EXPECT_EQ(AppliedPosition(), 2u);
  // Bytes that are no event (a Kafka message), on another partition.
  const SetAsideRecord garbage{.partition = 3,
                               .offset = 7,
                               .event_id = "",
                               .payload = std::string("not json \x01\xff"),
                               .reason = "undecodable: not JSON",
                               .at = domain::FromUnixMillis(kCreatedAtMillis + 1)};
  ASSERT_TRUE(ledger_->SetAside(garbage, {{3, 7}}).ok());
  // Handled again (a crash before the bus's commit): kept once; the position never moves back.
  ASSERT_TRUE(ledger_->SetAside(record, At(2)).ok());
  ledger_ = Open();
  ASSERT_TRUE(ledger_->SetAside(record, At(1)).ok());
  EXPECT_EQ(AppliedPosition(), 2u);
  auto facts = ledger_->ReadAuditFacts();
  ASSERT_TRUE(facts.ok()) << facts.error().message;
  ASSERT_EQ(facts->set_aside.size(), 2u);
  const SetAsideRecord& first = facts->set_aside[0];
  EXPECT_EQ(first.partition, 0);
  EXPECT_EQ(first.offset, 2u);
  EXPECT_EQ(first.event_id, "g-99-3");
  EXPECT_EQ(first.payload, payload);
  EXPECT_EQ(first.reason, record.reason);
  EXPECT_EQ(domain::ToUnixMillis(first.at), kCreatedAtMillis);
  EXPECT_EQ(facts->set_aside[1].partition, 3);
  EXPECT_EQ(facts->set_aside[1].event_id, "");
  EXPECT_EQ(facts->set_aside[1].payload, garbage.payload);
  EXPECT_EQ(facts->applied_offsets.at(3), 7u);
  // Nothing was credited or changed by setting aside.
  EXPECT_EQ(BalanceOf(3), 0);
  EXPECT_EQ(PacketOf(packet.packet_id).grabs.size(), 1u);
  ExpectConsistentAudit();
}

TEST_P(LedgerConformance, HistoryPagesNewestFirst) {
  for (int i = 0; i < 5; ++i) CreatePacket(1, {1, 2});
  // User 2 grabs from every packet.
  std::vector<LedgerEvent> grabs;
  for (PacketId id = 1; id <= 5; ++id) grabs.push_back(GrabEvent(id, 2, 1, 1));
  ASSERT_TRUE(ledger_->ApplyEvents(grabs, At(5)).ok());

  for (HistoryKind kind : {HistoryKind::kSent, HistoryKind::kReceived}) {
    const UserId user = kind == HistoryKind::kSent ? 1 : 2;
    std::vector<PacketId> seen;
    std::string cursor;
    int pages = 0;
    while (true) {
      auto page = ledger_->History(user, kind, 2, cursor);
      ASSERT_TRUE(page.ok()) << page.error().message;
      ++pages;
      for (const HistoryItem& item : page->items) {
        seen.push_back(item.packet_id);
        EXPECT_EQ(item.sender_id, 1);
        EXPECT_EQ(item.total_cents, 3);
        EXPECT_EQ(item.count, 2);
        EXPECT_EQ(item.greeting, "恭喜发财");
        if (kind == HistoryKind::kReceived) {
          EXPECT_EQ(item.amount_cents, 1);
          EXPECT_EQ(item.seq, 1);
          EXPECT_EQ(domain::ToUnixMillis(item.at), kCreatedAtMillis + 1);
        } else {
          EXPECT_EQ(domain::ToUnixMillis(item.at), kCreatedAtMillis);
        }
      }
      if (!page->next_cursor) break;
      cursor = *page->next_cursor;
    }
    EXPECT_EQ(seen, (std::vector<PacketId>{5, 4, 3, 2, 1}));
    EXPECT_EQ(pages, 3);  // 2 + 2 + 1, and no empty page at the end
  }
  auto exact = ledger_->History(1, HistoryKind::kSent, 5, "");
  ASSERT_TRUE(exact.ok());
  EXPECT_EQ(exact->items.size(), 5u);
  EXPECT_FALSE(exact->next_cursor.has_value());
  EXPECT_TRUE(ledger_->History(3, HistoryKind::kReceived, 10, "")->items.empty());

  for (std::string_view bad : {"abc", "-1", "0", "12x", " 1", "99999999999999999999"}) {
    auto page = ledger_->History(1, HistoryKind::kSent, 10, bad);
    ASSERT_FALSE(page.ok()) << bad;
    EXPECT_EQ(page.error().code, ErrorCode::kBadRequest);
  }
}

TEST_P(LedgerConformance, LoadUnfinishedPacketsReturnsSharesAndGrabs) {
  PacketRecord open_a = CreatePacket(1, {4, 5, 6});
  PacketRecord exhausted = CreatePacket(1, {8});
  PacketRecord open_b = CreatePacket(1, {1, 1});
  PacketRecord refunded = CreatePacket(1, {2, 3});
  const std::vector<LedgerEvent> events = {
      GrabEvent(open_a.packet_id, 20, 6, 3),    GrabEvent(open_a.packet_id, 21, 4, 1),
      GrabEvent(exhausted.packet_id, 20, 8, 1), GrabEvent(open_b.packet_id, 22, 1, 1),
      GrabEvent(refunded.packet_id, 23, 2, 1),  RefundEvent(refunded.packet_id, 1, 3)};
  ASSERT_TRUE(ledger_->ApplyEvents(events, At(6)).ok());

  auto unfinished = ledger_->LoadUnfinishedPackets();
  ASSERT_TRUE(unfinished.ok()) << unfinished.error().message;
  ASSERT_EQ(unfinished->size(), 2u);
  const PacketRecord& a = (*unfinished)[0];
  EXPECT_EQ(a.packet_id, open_a.packet_id);
  EXPECT_EQ(a.shares, (std::vector<Cents>{4, 5, 6}));
  ASSERT_EQ(a.grabs.size(), 2u);
  EXPECT_EQ(a.grabs[0].seq, 1);  // ordered by seq, not by arrival
  EXPECT_EQ(a.grabs[0].user_id, 21);
  EXPECT_EQ(a.grabs[1].seq, 3);
  EXPECT_EQ(a.grabs[1].user_id, 20);
  const PacketRecord& b = (*unfinished)[1];
  EXPECT_EQ(b.packet_id, open_b.packet_id);
  ASSERT_EQ(b.grabs.size(), 1u);
  EXPECT_EQ(b.grabs[0].user_id, 22);
  ExpectConsistentAudit();
}

TEST_P(LedgerConformance, AuditFactsReportAccountMismatches) {
  PacketRecord packet = CreatePacket(1, {10, 15});
  ASSERT_TRUE(ledger_->Deposit(3, 40, "").ok());
  ASSERT_TRUE(ledger_->ApplyEvents(std::vector{GrabEvent(packet.packet_id, 2, 15, 2)}, At(9)).ok());

  auto facts = ledger_->ReadAuditFacts();
  ASSERT_TRUE(facts.ok()) << facts.error().message;
  EXPECT_EQ(facts->deposits_cents, 65);
  EXPECT_EQ(facts->balances_cents, 55);
  EXPECT_EQ(facts->applied_offsets[0], 9u);
  ASSERT_EQ(facts->packets.size(), 1u);
  EXPECT_EQ(facts->packets[0].shares, (std::vector<Cents>{10, 15}));
  EXPECT_EQ(facts->packets[0].status, PacketStatus::kOpen);
  ASSERT_EQ(facts->packets[0].grabs.size(), 1u);
  EXPECT_EQ(facts->packets[0].grabs[0].user_id, 2);
  EXPECT_TRUE(facts->account_mismatches.empty());
  ExpectConsistentAudit();

  // Tamper with a balance behind the ledger's back: the audit names the account.
  backend_->ExecuteBehindTheLedger("UPDATE accounts SET balance_cents = 99 WHERE user_id = 3");
  facts = ledger_->ReadAuditFacts();
  ASSERT_TRUE(facts.ok());
  ASSERT_EQ(facts->account_mismatches.size(), 1u);
  EXPECT_EQ(facts->account_mismatches[0].user_id, 3);
  EXPECT_EQ(facts->account_mismatches[0].balance_cents, 99);
  EXPECT_EQ(facts->account_mismatches[0].expected_cents, 40);
}

TEST_P(LedgerConformance, MillionSharePacketRoundTripsThroughTheBlob) {
  constexpr std::int64_t kCount = 1'000'000;
  std::vector<Cents> shares(kCount);
  for (std::int64_t i = 0; i < kCount; ++i) shares[static_cast<std::size_t>(i)] = 1 + i % 997;
  PacketRecord packet = CreatePacket(1, shares);
  ASSERT_EQ(packet.packet_id, 1);

  const auto start = std::chrono::steady_clock::now();
  std::vector<LedgerEvent> grabs;
  for (std::int64_t seq = 1; seq <= 4096; ++seq) {
    grabs.push_back(GrabEvent(1, 100 + seq, shares[static_cast<std::size_t>(seq - 1)], seq));
  }
  ASSERT_TRUE(ledger_->ApplyEvents(grabs, At(4096)).ok());
  const auto elapsed = std::chrono::steady_clock::now() - start;
  std::printf(
      "ApplyEvents of 4096 grabs on a 1,000,000-share packet (cold: reads the 8 MB of shares "
      "once): %.2f ms\n",
      std::chrono::duration<double, std::milli>(elapsed).count());

  ledger_ = Open();  // from disk, not from any cache
  PacketRecord stored = PacketOf(1);
  EXPECT_EQ(stored.shares, shares);
  EXPECT_EQ(stored.grabs.size(), 4096u);
  auto unfinished = ledger_->LoadUnfinishedPackets();
  ASSERT_TRUE(unfinished.ok());
  ASSERT_EQ(unfinished->size(), 1u);
  EXPECT_EQ((*unfinished)[0].shares, shares);
  ExpectConsistentAudit();
}

TEST_P(LedgerConformance, ApplyEventsOf4096GrabsInOneTransaction) {
  // 64 packets of 64 shares, 4096 distinct grabbers: the shape of a busy embedded server.
  std::vector<PacketRecord> packets;
  for (int i = 0; i < 64; ++i) {
    std::vector<Cents> shares(64);
    for (std::size_t s = 0; s < shares.size(); ++s) shares[s] = 1 + static_cast<Cents>((i + s) % 7);
    packets.push_back(CreatePacket(1000, shares));
  }
  std::vector<LedgerEvent> events;
  for (std::size_t seq = 1; seq <= 64; ++seq) {
    for (const PacketRecord& packet : packets) {
      const UserId user = static_cast<UserId>(events.size() + 1);
      events.push_back(GrabEvent(packet.packet_id, user, packet.shares[seq - 1],
                                 static_cast<std::int64_t>(seq)));
    }
  }
  ASSERT_EQ(events.size(), 4096u);
  const auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(ledger_->ApplyEvents(events, At(events.size())).ok());
  const auto elapsed = std::chrono::steady_clock::now() - start;
  std::printf("ApplyEvents of 4096 grabs over 64 packets: %.2f ms\n",
              std::chrono::duration<double, std::milli>(elapsed).count());

  for (const LedgerEvent& event : events) ASSERT_EQ(BalanceOf(event.user_id), event.amount_cents);
  for (const PacketRecord& packet : packets) {
    EXPECT_EQ(PacketOf(packet.packet_id).status, PacketStatus::kExhausted);
  }
  // The whole batch again: nothing is credited twice.
  ASSERT_TRUE(ledger_->ApplyEvents(events, At(events.size())).ok());
  for (const LedgerEvent& event : events) ASSERT_EQ(BalanceOf(event.user_id), event.amount_cents);
  auto unfinished = ledger_->LoadUnfinishedPackets();
  ASSERT_TRUE(unfinished.ok());
  EXPECT_TRUE(unfinished->empty());
  ExpectConsistentAudit();
}

GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(LedgerConformance);

}  // namespace redpacket::ledger::testing
