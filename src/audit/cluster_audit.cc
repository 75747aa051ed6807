// The cluster audit: the MariaDB ledger's facts, with what Redis holds beyond them counted as
// pending, and every grab the ledger has compared with the one Redis decided.
#include <fmt/format.h>

#include <future>
#include <map>
#include <stdexcept>

#include "audit/audit.h"

namespace redpacket::audit {
namespace {

constexpr std::chrono::seconds kSnapshotWait{10};

std::optional<store::PacketSnapshot> SnapshotOf(store::PacketStore& store, domain::PacketId id) {
  auto promise = std::make_shared<std::promise<std::optional<store::PacketSnapshot>>>();
  auto future = promise->get_future();
  store.Snapshot(id, [promise](std::optional<store::PacketSnapshot> held) {
    promise->set_value(std::move(held));
  });
  if (future.wait_for(kSnapshotWait) != std::future_status::ready) {
    throw std::runtime_error(
        fmt::format("packet {}: the store did not answer within {} s", id, kSnapshotWait.count()));
  }
  return future.get();
}

}  // namespace

AuditReport RunClusterAudit(ledger::LedgerReader& ledger, store::PacketStore& store,
                            const ClusterAuditOptions& options) {
  const domain::TimePoint now = options.clock->Now();
  auto facts = ledger.ReadAuditFacts();
  if (!facts) throw std::runtime_error("cannot read the ledger: " + facts.error().message);
  std::vector<domain::LedgerEvent> pending;
  std::vector<std::string> mismatches;
  std::vector<std::string> overdue;  // decided by Redis past the deadline, still not applied
  std::size_t held = 0;
  for (const auto& packet : facts->packets) {
    std::optional<store::PacketSnapshot> snapshot = SnapshotOf(store, packet.packet_id);
    if (!snapshot) continue;  // finished and expired from Redis: the ledger alone answers
    ++held;
    std::map<domain::UserId, const domain::Grab*> in_ledger;
    for (const auto& grab : packet.grabs) in_ledger[grab.user_id] = &grab;
    for (const auto& grab : snapshot->record.grabs) {
      auto it = in_ledger.find(grab.user_id);
      if (it == in_ledger.end()) {
        pending.push_back(domain::LedgerEvent::Grab(packet.packet_id, grab.user_id,
                                                    grab.amount_cents, grab.seq,
                                                    domain::ToUnixMillis(grab.grabbed_at)));
        const auto age = now - grab.grabbed_at;
        if (age > options.pending_deadline) {
          overdue.push_back(fmt::format(
              "packet {}: Redis decided the grab of user {} (seq {}, {} cents) {} s ago; the "
              "ledger still lacks it",
              packet.packet_id, grab.user_id, grab.seq, grab.amount_cents,
              std::chrono::duration_cast<std::chrono::seconds>(age).count()));
        }
      } else if (it->second->seq != grab.seq || it->second->amount_cents != grab.amount_cents) {
        mismatches.push_back(fmt::format(
            "packet {}: user {} has seq {} / {} cents in the ledger but seq {} / {} in Redis",
            packet.packet_id, grab.user_id, it->second->seq, it->second->amount_cents, grab.seq,
            grab.amount_cents));
      }
    }
    if (in_ledger.size() > snapshot->record.grabs.size()) {
      mismatches.push_back(fmt::format("packet {}: the ledger has {} grabs, Redis only {}",
                                       packet.packet_id, in_ledger.size(),
                                       snapshot->record.grabs.size()));
    }
    if (snapshot->record.refund_cents && !packet.refund_cents) {
      pending.push_back(domain::LedgerEvent::Refund(packet.packet_id, packet.sender_id,
                                                    *snapshot->record.refund_cents, 0));
    }
    // Expired in Redis (closed or not yet swept), not refunded in the ledger, long after expiry:
    // the refund is overdue.
    const auto status = snapshot->record.status;
    const bool unsettled = status == domain::PacketStatus::kExpired ||
                           status == domain::PacketStatus::kRefunded;
    const auto since_expiry = now - snapshot->record.expires_at;
    if (unsettled && !packet.refund_cents && since_expiry > options.pending_deadline) {
      overdue.push_back(fmt::format(
          "packet {}: expired {} s ago in Redis; the ledger has no refund", packet.packet_id,
          std::chrono::duration_cast<std::chrono::seconds>(since_expiry).count()));
    }
  }
  AuditReport report = CheckFacts(*facts, pending, "Redis");
  for (auto& mismatch : mismatches) report.violations.push_back(std::move(mismatch));
  for (auto& text : overdue) report.violations.push_back(std::move(text));
  report.checked.push_back(fmt::format(
      "events Redis decided more than {} s ago: each in the ledger ({} not)",
      options.pending_deadline.count(), overdue.size()));
  report.checked.push_back(fmt::format(
      "{} packets still in Redis compared grab by grab with the ledger ({} events not applied yet)",
      held, pending.size()));
  return report;
}

}  // namespace redpacket::audit
