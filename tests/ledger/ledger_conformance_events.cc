// The Ledger contract for events (see ledger_conformance.h): each applied exactly once, the
// packet's status moved by what they say, a batch that breaks a rule refused whole, a refused
// message set aside with the position that passes it, and a busy server's batch in one go.
#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <limits>
#include <numeric>
#include <string>
#include <vector>

#include "tests/ledger/ledger_conformance.h"

namespace redpacket::ledger::testing {

TEST_P(LedgerConformance, BalanceWithOffsetsReadsOneSnapshot) {
  PacketRecord packet = CreatePacket(1, {10, 20});
  ASSERT_TRUE(ledger_->ApplyEvents(std::vector{GrabEvent(packet.packet_id, 7, 10, 1)}, At(3)).ok());
  auto snapshot = Open()->BalanceWithOffsets(7);
  ASSERT_TRUE(snapshot.ok()) << snapshot.error().message;
  EXPECT_EQ(snapshot->balance_cents, 10);
  // A ledger that records offsets reports them with the balance.
  if (!snapshot->applied_offsets.empty()) {
    EXPECT_EQ(snapshot->applied_offsets.at(0), 3u);
  }
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
  ASSERT_TRUE(ledger_->ApplyEvents(std::vector{GrabEvent(packet.packet_id, 2, 5, 1)}, At(1)).ok());
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

}  // namespace redpacket::ledger::testing
