// Metrics: prometheus-cpp registry rendered in the text format.
#include "http/ops/metrics.h"

#include <prometheus/text_serializer.h>

#include <algorithm>
#include <sstream>

namespace redpacket::http {
namespace {

constexpr int kStatuses[] = {200, 201, 400, 401, 402, 403, 404, 405, 409, 410, 413, 429, 500, 503};

}  // namespace

Metrics::Metrics(std::vector<std::string> route_names)
    : registry_(std::make_shared<prometheus::Registry>()),
      route_names_(std::move(route_names)),
      requests_(prometheus::BuildCounter()
                    .Name("redpacket_http_requests_total")
                    .Help("HTTP requests by route and status")
                    .Register(*registry_)),
      latency_(prometheus::BuildHistogram()
                   .Name("redpacket_http_request_duration_seconds")
                   .Help("Time from a request's parse to its response, by route")
                   .Register(*registry_)),
      requests_by_route_(route_names_.size()) {
  const prometheus::Histogram::BucketBoundaries buckets = {
      0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0};
  for (const auto& name : route_names_)
    latency_by_route_.push_back(&latency_.Add({{"route", name}}, buckets));
  for (auto& slots : requests_by_route_) {
    for (auto& slot : slots) slot.store(nullptr, std::memory_order_relaxed);
  }
}

std::size_t Metrics::StatusSlot(int status) {
  for (std::size_t i = 0; i < std::size(kStatuses); ++i) {
    if (kStatuses[i] == status) return i;
  }
  return kStatusSlots - 1;
}

void Metrics::ObserveRequest(std::size_t route, int status, double seconds) {
  latency_by_route_[route]->Observe(seconds);
  auto& slot = requests_by_route_[route][StatusSlot(status)];
  prometheus::Counter* counter = slot.load(std::memory_order_acquire);
  if (counter == nullptr) {
    std::lock_guard lock(create_mutex_);
    counter = slot.load(std::memory_order_acquire);
    if (counter == nullptr) {
      counter =
          &requests_.Add({{"route", route_names_[route]}, {"status", std::to_string(status)}});
      slot.store(counter, std::memory_order_release);
    }
  }
  counter->Increment();
}

void Metrics::AddGauge(const std::string& name, const std::string& help,
                       std::function<double()> read) {
  auto& family = prometheus::BuildGauge().Name(name).Help(help).Register(*registry_);
  read_gauges_.push_back({&family.Add({}), std::move(read)});
}

void Metrics::AddCounter(const std::string& name, const std::string& help,
                         const prometheus::Labels& labels, std::function<double()> read) {
  auto& family = counter_families_[name];
  if (family == nullptr)
    family = &prometheus::BuildCounter().Name(name).Help(help).Register(*registry_);
  read_counters_.push_back({&family->Add(labels), std::move(read)});
}

std::string Metrics::Render() {
  std::lock_guard lock(render_mutex_);
  for (auto& gauge : read_gauges_) gauge.gauge->Set(gauge.read());
  for (auto& counter : read_counters_) {
    const double value = counter.read();
    if (value > counter.exported) counter.counter->Increment(value - counter.exported);
    counter.exported = std::max(counter.exported, value);
  }
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, registry_->Collect());
  return out.str();
}

}  // namespace redpacket::http
