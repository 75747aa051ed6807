// Applier: poll, apply in one transaction, commit offsets. A ledger that cannot write stalls the
// worker (retried with backoff, nothing committed); an event the ledger refuses is isolated and
// set aside in the ledger itself.
#include "applier/applier.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <vector>

#include "bus/codec/event_codec.h"

namespace redpacket::applier {
namespace {

using domain::ErrorCode;
using domain::Status;

// The offsets a batch covers: for each partition, its last message's.
bus::PartitionOffsets OffsetsOf(std::span<const bus::ConsumedMessage> messages) {
  bus::PartitionOffsets offsets;
  for (const auto& message : messages) {
    auto& offset = offsets[message.partition];
    offset = std::max(offset, message.offset);
  }
  return offsets;
}

}  // namespace

Applier::Applier(bus::EventSource& source, ledger::LedgerWriter& ledger, ApplierOptions options,
                 HandledListener on_handled)
    : source_(source),
      ledger_(ledger),
      options_(std::move(options)),
      on_handled_(std::move(on_handled)),
      thread_({.name = options_.name,
               .period = std::chrono::milliseconds(0),
               .background = options_.background},
              [this] { Round(); }) {}

Applier::~Applier() { Stop(); }

void Applier::Start() {
  stopping_ = false;
  thread_.Start();
}

// One round on the applier's thread; after a batch smaller than max_batch_events it waits
// batch_interval for the next (fewer, larger transactions).
void Applier::Round() {
  const std::size_t handled = RunOnce();
  if (handled < options_.max_batch_events && options_.batch_interval.count() > 0) {
    thread_.WaitFor(options_.batch_interval);
  }
}

void Applier::Stop() {
  stopping_.store(true, std::memory_order_release);
  thread_.Stop();
}

void Applier::Drain() {
  while (RunOnce() > 0) {
  }
}

std::size_t Applier::RunOnce() {
  auto polled = source_.Poll(options_.max_batch_events, options_.poll_wait);
  if (!polled.ok()) {
    ++retries_;
    spdlog::warn("applier: cannot read the bus: {}", polled.error().message);
    std::this_thread::sleep_for(options_.retry_initial);
    return 0;
  }
  // Lag costs the source a round trip (Kafka asks the broker): at most once a second.
  if (const auto now = std::chrono::steady_clock::now(); now >= next_lag_check_) {
    next_lag_check_ = now + std::chrono::seconds(1);
    if (auto lag = source_.Lag()) lag_.store(static_cast<std::int64_t>(*lag));
  }
  const std::vector<bus::ConsumedMessage>& messages = *polled;
  if (messages.empty()) return 0;
  if (!Handle(messages)) return 0;  // stopped while the ledger could not write
  // Every message polled is in the ledger now, applied or set aside: nothing before these
  // offsets is pending.
  CommitOffsets(OffsetsOf(messages));
  return messages.size();
}

bool Applier::Handle(std::span<const bus::ConsumedMessage> messages) {
  // In poll order, so that within a partition no offset is recorded before the messages
  // ahead of it are in the ledger.
  std::size_t start = 0;
  while (start < messages.size()) {
    if (!messages[start].event) {
      if (!SetAside(messages[start], "undecodable: " + messages[start].decode_error)) return false;
      ++start;
      continue;
    }
    std::size_t end = start;
    while (end < messages.size() && messages[end].event) ++end;
    if (!ApplyRun(messages.subspan(start, end - start))) return false;
    start = end;
  }
  return true;
}

bool Applier::ApplyRun(std::span<const bus::ConsumedMessage> run) {
  auto whole = Apply(run);
  if (!whole) return false;
  if (whole->ok()) return true;
  // The ledger refuses an event of the run (an unknown packet, a wrong amount...): apply them
  // one at a time, so the good ones go through and each refused one is set aside with its
  // own reason.
  spdlog::error("applier: a batch of {} events was refused ({}); applying them one by one",
                run.size(), whole->error().message);
  for (std::size_t i = 0; i < run.size(); ++i) {
    auto single = run.size() == 1 ? whole : Apply(run.subspan(i, 1));
    if (!single) return false;
    if (!single->ok() && !SetAside(run[i], single->error().message)) return false;
  }
  return true;
}

std::optional<Status> Applier::Apply(std::span<const bus::ConsumedMessage> run) {
  std::vector<domain::LedgerEvent> events;
  events.reserve(run.size());
  for (const auto& message : run) events.push_back(*message.event);
  // The offsets recorded with a transaction cover only what it applied: a restart of the
  // embedded journal resumes after them, so they must never run ahead of the events.
  const bus::PartitionOffsets offsets = OffsetsOf(run);
  return RetryLedger(
      [&]() -> Status {
        Status status = ledger_.ApplyEvents(events, offsets);
        if (status.ok()) {
          ++batches_;
          applied_events_ += events.size();
          RecordLatencies(events);
          Notify(run);
        }
        return status;
      },
      "apply events to the ledger", /*retry_refused=*/false);
}

bool Applier::SetAside(const bus::ConsumedMessage& message, const std::string& reason) {
  spdlog::error("applier: setting aside partition {} offset {}: {}", message.partition,
                message.offset, reason);
  ledger::SetAsideRecord record{.partition = message.partition,
                                .offset = message.offset,
                                .event_id = message.event ? message.event->EventId() : "",
                                .payload = message.payload,
                                .reason = reason,
                                .at = options_.clock->Now()};
  // The journal hands over events, not bytes: the record keeps the event in the bus's JSON.
  if (record.payload.empty() && message.event) {
    record.payload = bus::codec::EncodeEvent(*message.event);
  }
  // Why in the ledger, in the transaction that moves the offset: a set-aside event is then never
  // lost, and a full disk fails both (the message is handled again), never only the first.
  // The ledger never refuses this write, so every failure is retried.
  auto kept =
      RetryLedger([&] { return ledger_.SetAside(record, OffsetsOf(std::span(&message, 1))); },
                  "set an event aside in the ledger", /*retry_refused=*/true);
  if (!kept) return false;
  ++dead_lettered_;
  Notify(std::span(&message, 1));
  // For operators' tools (Kafka: the dead-letter topic): a copy, once; the ledger has it.
  if (Status copied = source_.DeadLetter(message, reason); !copied.ok()) {
    spdlog::warn(
        "applier: set-aside partition {} offset {} is in the ledger; copying it to the "
        "dead-letter channel failed: {}",
        message.partition, message.offset, copied.error().message);
  }
  return true;
}

std::optional<Status> Applier::RetryLedger(const std::function<Status()>& attempt, const char* what,
                                           bool retry_refused) {
  auto backoff = options_.retry_initial;
  while (true) {
    Status status = attempt();
    if (status.ok()) {
      ClearStalled();
      return status;
    }
    if (status.error().code == ErrorCode::kRefused && !retry_refused) {
      ClearStalled();  // the ledger answered: it can write
      return status;
    }
    // Whatever else failed (the disk full, an I/O error, the database unreachable...), the
    // ledger does not hold the events: the position stays, and they are tried again.
    ++retries_;
    MarkStalled(status.error().message);
    spdlog::warn("applier: cannot {} (retrying in {} ms): {}", what, backoff.count(),
                 status.error().message);
    if (!Backoff(backoff)) return std::nullopt;
    backoff = std::min(options_.retry_max, backoff * 2);
  }
}

void Applier::CommitOffsets(const bus::PartitionOffsets& offsets) {
  auto backoff = options_.retry_initial;
  while (true) {
    Status committed = source_.Commit(offsets);
    if (committed.ok()) {
      for (const auto& [partition, offset] : offsets) {
        last_offset_.store(std::max(last_offset_.load(), offset));
      }
      return;
    }
    if (committed.error().code != ErrorCode::kUnavailable) {
      // The consumer group moved on (this member was presumed dead, or a rebalance is under
      // way): retrying would never pass and would keep the applier from polling again, which is
      // how it rejoins. The ledger holds the events; the partitions' owner reads them again
      // and applies nothing twice.
      ++commits_dropped_;
      spdlog::warn("applier: dropping the commit of the bus offsets: {}",
                   committed.error().message);
      return;
    }
    ++retries_;
    spdlog::warn("applier: cannot commit the bus offsets (retrying in {} ms): {}", backoff.count(),
                 committed.error().message);
    if (!Backoff(backoff)) return;  // the bus delivers them again after a restart
    backoff = std::min(options_.retry_max, backoff * 2);
  }
}

bool Applier::Backoff(std::chrono::milliseconds backoff) {
  // Sleep in small steps so Stop() is not held up by a long backoff.
  const auto until = std::chrono::steady_clock::now() + backoff;
  while (std::chrono::steady_clock::now() < until) {
    if (stopping_.load(std::memory_order_acquire)) return false;
    std::this_thread::sleep_for(std::min(backoff, std::chrono::milliseconds(10)));
  }
  return !stopping_.load(std::memory_order_acquire);
}

void Applier::MarkStalled(const std::string& reason) {
  std::lock_guard lock(stall_mutex_);
  if (!stalled_since_) {
    stalled_since_ = options_.clock->Now();
    spdlog::error("applier: the ledger cannot write; applying nothing until it can: {}", reason);
  }
  stall_reason_ = reason;
}

void Applier::ClearStalled() {
  std::lock_guard lock(stall_mutex_);
  if (!stalled_since_) return;
  spdlog::info(
      "applier: the ledger writes again (stalled {} ms)",
      std::chrono::duration_cast<std::chrono::milliseconds>(options_.clock->Now() - *stalled_since_)
          .count());
  stalled_since_.reset();
  stall_reason_.clear();
}

void Applier::Notify(std::span<const bus::ConsumedMessage> handled) {
  if (on_handled_) on_handled_(handled);
}

void Applier::RecordLatencies(std::span<const domain::LedgerEvent> events) {
  const std::int64_t now_ms = domain::ToUnixMillis(options_.clock->Now());
  std::lock_guard lock(latency_mutex_);
  for (const auto& event : events) {
    if (event.type != domain::LedgerEvent::Type::kGrab) continue;
    const std::int64_t latency = std::max<std::int64_t>(0, now_ms - event.at_millis);
    if (latencies_ms_.size() < kLatencyWindow) {
      latencies_ms_.push_back(latency);
    } else {
      latencies_ms_[latency_next_] = latency;
    }
    latency_next_ = (latency_next_ + 1) % kLatencyWindow;
  }
}

std::optional<Applier::Stall> Applier::stall() const {
  std::lock_guard lock(stall_mutex_);
  if (!stalled_since_) return std::nullopt;
  return Stall{*stalled_since_, stall_reason_};
}

ApplierStats Applier::stats() const {
  ApplierStats stats;
  stats.applied_events = applied_events_.load();
  stats.dead_lettered = dead_lettered_.load();
  stats.batches = batches_.load();
  stats.retries = retries_.load();
  stats.commits_dropped = commits_dropped_.load();
  stats.last_offset = last_offset_.load();
  if (const auto lag = lag_.load(); lag >= 0) stats.lag = static_cast<std::uint64_t>(lag);
  {
    std::lock_guard lock(stall_mutex_);
    stats.stalled_since = stalled_since_;
    stats.stall_reason = stall_reason_;
  }
  std::vector<std::int64_t> window;
  {
    std::lock_guard lock(latency_mutex_);
    window = latencies_ms_;
  }
  if (!window.empty()) {
    auto at = [&window](double quantile) {
      const auto index =
          static_cast<std::size_t>(quantile * static_cast<double>(window.size() - 1));
      std::nth_element(window.begin(), window.begin() + static_cast<std::ptrdiff_t>(index),
                       window.end());
      return std::chrono::milliseconds(window[index]);
    };
    stats.credit_latency_p50 = at(0.50);
    stats.credit_latency_p99 = at(0.99);
  }
  return stats;
}

}  // namespace redpacket::applier
