// The Ledger contract for reads (see ledger_conformance.h): history pages, the packets a restart
// loads back, the audit's facts and a million-share packet through the shares blob.
#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <limits>
#include <numeric>
#include <string>
#include <vector>

#include "tests/ledger/ledger_conformance.h"

namespace redpacket::ledger::testing {

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

}  // namespace redpacket::ledger::testing
