// The audit: invariants 1-4 and 6 (docs/invariants.md) checked against the durable state.
#include "audit/audit.h"

#include <map>
#include <set>
#include <stdexcept>

#include <fmt/format.h>

#include "bus/local/journal.h"
#include "ledger/sqlite/sqlite_ledger.h"

namespace redpacket::audit {

using domain::Cents;
using domain::LedgerEvent;

AuditReport RunAudit(const std::filesystem::path& data_dir) {
  const auto ledger_file = data_dir / "ledger.sqlite";
  if (!std::filesystem::exists(ledger_file)) {
    throw std::runtime_error(fmt::format("no ledger at {} (is --data-dir right?)", ledger_file.string()));
  }
  auto ledger = ledger::OpenSqliteLedger(ledger_file, /*read_only=*/true);
  auto facts = ledger->ReadAuditFacts();
  if (!facts) throw std::runtime_error("cannot read the ledger: " + facts.error().message);
  std::vector<LedgerEvent> pending;
  std::vector<std::string> lost;
  std::size_t applied_checked = 0;
  if (std::filesystem::exists(data_dir / "journal")) {
    const auto& offsets = facts->applied_offsets;
    const std::uint64_t applied = offsets.contains(0) ? offsets.at(0) : 0;
    // Every event the journal still holds, the applied ones too: an applied position that moved
    // past an event the ledger does not hold is money lost, which the ledger's own sums can
    // never show.
    auto read = bus::Journal::ReadAll(data_dir / "journal", 0);
    if (!read) throw std::runtime_error("cannot read the journal: " + read.error().message);
    // A set-aside event is reported once, as such (CheckFacts), not again as lost.
    std::set<std::pair<std::uint64_t, std::string>> set_aside;
    for (const auto& record : facts->set_aside) {
      if (record.partition == 0) set_aside.emplace(record.offset, record.event_id);
    }
    for (const auto& positioned : *read) {
      if (positioned.position > applied) {
        pending.push_back(positioned.event);
        continue;
      }
      ++applied_checked;
      if (!LedgerHolds(*facts, positioned.event) &&
          !set_aside.contains({positioned.position, positioned.event.EventId()})) {
        lost.push_back(fmt::format(
            "journal position {} ({} of {} cents) is at or below the applied position {} but the "
            "ledger does not hold it",
            positioned.position, positioned.event.EventId(), positioned.event.amount_cents,
            applied));
      }
    }
  }
  AuditReport report = CheckFacts(*facts, pending, "journal");
  for (auto& text : lost) report.violations.push_back(std::move(text));
  report.checked.push_back(fmt::format(
      "{} journal events at or below the applied position: each held by the ledger ({} not)",
      applied_checked, lost.size()));
  return report;
}

bool LedgerHolds(const ledger::AuditFacts& facts, const LedgerEvent& event) {
  for (const auto& packet : facts.packets) {
    if (packet.packet_id != event.packet_id) continue;
    if (event.type == LedgerEvent::Type::kRefund) {
      return packet.refund_cents == event.amount_cents;
    }
    for (const auto& grab : packet.grabs) {
      if (grab.user_id == event.user_id) {
        return grab.amount_cents == event.amount_cents && grab.seq == event.seq;
      }
    }
    return false;
  }
  return false;
}

AuditReport CheckFacts(const ledger::AuditFacts& facts_in, std::span<const LedgerEvent> pending,
                       std::string_view pending_source) {
  const ledger::AuditFacts* facts = &facts_in;
  AuditReport report;
  auto violation = [&report](std::string text) { report.violations.push_back(std::move(text)); };

  // Journal events the ledger has not applied yet belong to their packet too.
  std::map<domain::PacketId, std::vector<domain::Grab>> pending_grabs;
  std::map<domain::PacketId, Cents> pending_refunds;
  Cents pending_cents = 0;
  for (const LedgerEvent& event : pending) {
    pending_cents += event.amount_cents;
    if (event.type == LedgerEvent::Type::kGrab) {
      pending_grabs[event.packet_id].push_back({event.user_id, event.amount_cents, event.seq, {}});
    } else {
      if (pending_refunds.contains(event.packet_id)) violation(fmt::format("packet {}: refunded twice in the {}", event.packet_id, pending_source));
      pending_refunds[event.packet_id] = event.amount_cents;
    }
  }

  Cents escrow_cents = 0;
  std::size_t grab_count = 0;
  std::size_t refund_count = 0;
  for (const auto& packet : facts->packets) {
    const auto id = packet.packet_id;
    Cents shares_sum = 0;
    for (Cents share : packet.shares) {
      shares_sum += share;
      if (share < 1) violation(fmt::format("packet {}: a share of {} cents (every share must be >= 1)", id, share));
    }
    if (static_cast<std::int64_t>(packet.shares.size()) != packet.count || shares_sum != packet.total_cents) {
      violation(fmt::format("packet {}: {} shares summing to {} for count {} and total {}", id, packet.shares.size(),
                            shares_sum, packet.count, packet.total_cents));
    }
    std::vector<domain::Grab> grabs = packet.grabs;
    if (auto it = pending_grabs.find(id); it != pending_grabs.end()) {
      grabs.insert(grabs.end(), it->second.begin(), it->second.end());
    }
    std::set<domain::UserId> users;
    std::set<std::int64_t> seqs;
    Cents grabbed = 0;
    for (const auto& grab : grabs) {
      grabbed += grab.amount_cents;
      if (!users.insert(grab.user_id).second) violation(fmt::format("packet {}: user {} grabbed twice", id, grab.user_id));
      if (!seqs.insert(grab.seq).second) violation(fmt::format("packet {}: seq {} used twice", id, grab.seq));
      if (grab.seq < 1 || grab.seq > packet.count) {
        violation(fmt::format("packet {}: seq {} beyond count {} (oversell)", id, grab.seq, packet.count));
      } else if (packet.shares.size() == static_cast<std::size_t>(packet.count) &&
                 packet.shares[static_cast<std::size_t>(grab.seq - 1)] != grab.amount_cents) {
        violation(fmt::format("packet {}: grab {} took {} cents, share {} is {}", id, grab.seq, grab.amount_cents,
                              grab.seq, packet.shares[static_cast<std::size_t>(grab.seq - 1)]));
      }
    }
    grab_count += grabs.size();
    std::optional<Cents> refund = packet.refund_cents;
    if (auto it = pending_refunds.find(id); it != pending_refunds.end()) {
      if (refund) violation(fmt::format("packet {}: refunded twice (ledger and {})", id, pending_source));
      refund = it->second;
    }
    if (static_cast<std::int64_t>(grabs.size()) > packet.count) {
      violation(fmt::format("packet {}: {} grabs for {} shares (oversell)", id, grabs.size(), packet.count));
    }
    if (refund) {
      ++refund_count;
      if (grabbed + *refund != packet.total_cents) {
        violation(fmt::format("packet {}: grabs {} + refund {} != total {}", id, grabbed, *refund, packet.total_cents));
      }
    } else if (grabbed > packet.total_cents) {
      violation(fmt::format("packet {}: grabs {} exceed total {}", id, grabbed, packet.total_cents));
    }
    if (packet.status == domain::PacketStatus::kExhausted &&
        (static_cast<std::int64_t>(packet.grabs.size()) != packet.count || grabbed != packet.total_cents)) {
      violation(fmt::format("packet {}: exhausted with {} grabs summing to {}", id, packet.grabs.size(), grabbed));
    }
    escrow_cents += packet.total_cents - grabbed - refund.value_or(0);
  }
  for (const auto& [id, grabs] : pending_grabs) {
    bool known = false;
    for (const auto& packet : facts->packets) known = known || packet.packet_id == id;
    if (!known) violation(fmt::format("{}: {} grabs of unknown packet {}", pending_source, grabs.size(), id));
  }
  for (const auto& mismatch : facts->account_mismatches) {
    violation(fmt::format("account {}: balance {} but its history gives {}", mismatch.user_id, mismatch.balance_cents,
                          mismatch.expected_cents));
  }
  const Cents accounted = facts->balances_cents + escrow_cents + pending_cents;
  if (facts->deposits_cents != accounted) {
    violation(fmt::format("money not conserved: deposits {} != balances {} + escrow {} + pending {} = {}",
                          facts->deposits_cents, facts->balances_cents, escrow_cents, pending_cents, accounted));
  }

  report.checked.push_back(fmt::format("{} packets: shares sum to total, every share >= 1, count right",
                                       facts->packets.size()));
  report.checked.push_back(fmt::format("{} grabs ({} not yet applied): at most count per packet, one per user, "
                                       "each took its share",
                                       grab_count, pending.size()));
  report.checked.push_back(fmt::format("{} refunds: sum(grabs) + refund == total", refund_count));
  report.checked.push_back(fmt::format("accounts: every balance matches its deposits, packets, grabs and refunds "
                                       "({} mismatches)",
                                       facts->account_mismatches.size()));
  report.checked.push_back(fmt::format("money: deposits {} == balances {} + escrow {} + pending {}",
                                       facts->deposits_cents, facts->balances_cents, escrow_cents, pending_cents));
  // Whatever the applier set aside (kept whole in the ledger) is money decided and not credited.
  for (const auto& record : facts->set_aside) {
    violation(fmt::format(
        "set aside by the applier, not credited: partition {} offset {} ({}): {}; payload: {}",
        record.partition, record.offset, record.event_id.empty() ? "undecodable" : record.event_id,
        record.reason, record.payload));
  }
  report.checked.push_back(fmt::format(
      "{} events set aside by the applier (the ledger's dead_letters)", facts->set_aside.size()));
  return report;
}

}  // namespace redpacket::audit
