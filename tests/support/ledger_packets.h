// A packet created in a ledger the way the service creates one: its sender (user 1) funded with
// exactly its total first. For the unit tests of what reads packets back from a ledger (the
// loader, the check). Blocking test code.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <vector>

#include "domain/packet.h"
#include "ledger/ledger.h"

namespace redpacket::testing_support {

inline ledger::PacketRecord CreateFundedPacket(ledger::Ledger& ledger,
                                               std::vector<domain::Cents> shares) {
  domain::Cents total = 0;
  for (auto share : shares) total += share;
  EXPECT_TRUE(ledger.Deposit(1, total, "").ok());
  domain::PacketSpec spec{.sender_id = 1,
                          .kind = domain::PacketKind::kLucky,
                          .total_cents = total,
                          .count = static_cast<std::int64_t>(shares.size()),
                          .greeting = "",
                          .expires_in_s = 3600,
                          .receiver_id = {}};
  auto packet = ledger.CreatePacket(spec, shares, domain::Clock::now(),
                                    domain::Clock::now() + std::chrono::hours(1), "");
  EXPECT_TRUE(packet.ok());
  return *packet;
}

}  // namespace redpacket::testing_support
