// Worker: poll, apply in one transaction, commit offsets; transient errors back off, poison
// events are isolated and set aside.
#include "worker/worker.h"

#include <fmt/format.h>
#include <pthread.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <vector>

namespace redpacket::worker {
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

Worker::Worker(bus::EventSource& source, ledger::LedgerWriter& ledger, WorkerOptions options,
               HandledListener on_handled)
    : source_(source),
      ledger_(ledger),
      options_(std::move(options)),
      on_handled_(std::move(on_handled)) {}

Worker::~Worker() { Stop(); }

void Worker::Start() {
  stopping_ = false;
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), options_.name.substr(0, 15).c_str());
    // On Linux a thread's nice value is its own (setpriority on its tid).
    if (options_.background && setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), 19) != 0) {
      spdlog::warn("worker {}: cannot lower its priority", options_.name);
    }
    while (!stopping_.load(std::memory_order_acquire)) {
      const std::size_t handled = RunOnce();
      if (handled < options_.max_batch_events && options_.batch_interval.count() > 0 &&
          !stopping_.load(std::memory_order_acquire)) {
        std::this_thread::sleep_for(options_.batch_interval);
      }
    }
  });
}

void Worker::Stop() {
  stopping_.store(true, std::memory_order_release);
  if (thread_.joinable()) thread_.join();
}

void Worker::Drain() {
  while (RunOnce() > 0) {
  }
}

std::size_t Worker::RunOnce() {
  auto polled = source_.Poll(options_.max_batch_events, options_.poll_wait);
  if (!polled.ok()) {
    ++retries_;
    spdlog::warn("worker: cannot read the bus: {}", polled.error().message);
    std::this_thread::sleep_for(options_.retry_initial);
    return 0;
  }
  // Lag costs the source a round trip (Kafka asks the broker): at most once a second.
  if (const auto now = std::chrono::steady_clock::now(); now >= next_lag_check_) {
    next_lag_check_ = now + std::chrono::seconds(1);
    if (auto lag = source_.Lag()) lag_.store(static_cast<std::int64_t>(*lag));
  }
  std::vector<bus::ConsumedMessage>& messages = *polled;
  if (messages.empty()) return 0;

  // Undecodable messages can never be applied: set them aside before the batch.
  std::vector<bus::ConsumedMessage> decoded;
  decoded.reserve(messages.size());
  for (auto& message : messages) {
    if (message.event) {
      decoded.push_back(std::move(message));
    } else {
      SetAside(message, "undecodable: " + message.decode_error);
    }
  }
  if (!ApplyBatch(decoded)) return 0;  // stopped while the ledger was unreachable
  // Offsets of every message polled, decoded or set aside: nothing before them is pending.
  const bus::PartitionOffsets offsets = OffsetsOf(messages);
  auto committed = WithRetry([&] { return source_.Commit(offsets); }, "commit the bus offsets");
  if (committed && committed->ok()) {
    for (const auto& [partition, offset] : offsets) {
      last_offset_.store(std::max(last_offset_.load(), offset));
    }
  }
  return messages.size();
}

bool Worker::ApplyBatch(std::span<const bus::ConsumedMessage> batch) {
  if (batch.empty()) return true;
  std::vector<domain::LedgerEvent> events;
  events.reserve(batch.size());
  for (const auto& message : batch) events.push_back(*message.event);
  // The offsets recorded with a transaction cover only what it applied: a restart of the
  // embedded journal resumes after them, so they must never run ahead of the events.
  auto apply = [&](std::span<const domain::LedgerEvent> some,
                   std::span<const bus::ConsumedMessage> handled) -> std::optional<Status> {
    const bus::PartitionOffsets offsets = OffsetsOf(handled);
    return WithRetry(
        [&]() -> Status {
          Status status = ledger_.ApplyEvents(some, offsets);
          if (status.ok()) {
            ++batches_;
            applied_events_ += some.size();
            RecordLatencies(some);
            Notify(handled);
          }
          return status;
        },
        "apply events to the ledger");
  };

  auto whole = apply(events, batch);
  if (!whole) return false;
  if (whole->ok()) return true;
  // A contradiction in the batch (an unknown packet, a wrong amount...): apply the events one
  // at a time so the good ones go through and each bad one is set aside with its own reason.
  spdlog::error("worker: a batch of {} events failed ({}); applying them one by one", events.size(),
                whole->error().message);
  for (std::size_t i = 0; i < batch.size(); ++i) {
    auto single = apply(std::span(events).subspan(i, 1), batch.subspan(i, 1));
    if (!single) return false;
    if (!single->ok()) SetAside(batch[i], single->error().message);
  }
  return true;
}

std::optional<Status> Worker::WithRetry(const std::function<Status()>& attempt, const char* what) {
  auto backoff = options_.retry_initial;
  while (true) {
    Status status = attempt();
    if (status.ok() || status.error().code != ErrorCode::kUnavailable) return status;
    ++retries_;
    spdlog::warn("worker: cannot {} (retrying in {} ms): {}", what, backoff.count(),
                 status.error().message);
    // Sleep in small steps so Stop() is not held up by a long backoff.
    const auto until = std::chrono::steady_clock::now() + backoff;
    while (std::chrono::steady_clock::now() < until) {
      if (stopping_.load(std::memory_order_acquire)) return std::nullopt;
      std::this_thread::sleep_for(std::min(backoff, std::chrono::milliseconds(10)));
    }
    backoff = std::min(options_.retry_max, backoff * 2);
  }
}

void Worker::SetAside(const bus::ConsumedMessage& message, const std::string& reason) {
  spdlog::error("worker: setting aside partition {} offset {}: {}", message.partition,
                message.offset, reason);
  auto parked = WithRetry([&] { return source_.DeadLetter(message, reason); }, "dead-letter");
  if (parked && !parked->ok()) {
    // Nowhere to set it aside: log it whole, so an operator can replay it by hand.
    spdlog::critical("worker: cannot dead-letter partition {} offset {} ({}): {}; payload: {}",
                     message.partition, message.offset, parked->error().message, reason,
                     message.payload);
  }
  ++dead_lettered_;
  Notify(std::span(&message, 1));
}

void Worker::Notify(std::span<const bus::ConsumedMessage> handled) {
  if (on_handled_) on_handled_(handled);
}

void Worker::RecordLatencies(std::span<const domain::LedgerEvent> events) {
  const std::int64_t now_ms = domain::ToUnixMillis(domain::Clock::now());
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

WorkerStats Worker::stats() const {
  WorkerStats stats;
  stats.applied_events = applied_events_.load();
  stats.dead_lettered = dead_lettered_.load();
  stats.batches = batches_.load();
  stats.retries = retries_.load();
  stats.last_offset = last_offset_.load();
  if (const auto lag = lag_.load(); lag >= 0) stats.lag = static_cast<std::uint64_t>(lag);
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

}  // namespace redpacket::worker
