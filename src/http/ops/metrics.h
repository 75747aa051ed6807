// Prometheus metrics of the server: requests and latency per route and status, grab outcomes,
// and gauges read from the service at scrape time. Thread-safe.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <array>
#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace redpacket::http {

class Metrics {
 public:
  // `route_names[i]` labels route i.
  explicit Metrics(std::vector<std::string> route_names);

  void ObserveRequest(std::size_t route, int status, double seconds);
  // A gauge whose value is read by `read` at every scrape.
  void AddGauge(const std::string& name, const std::string& help, std::function<double()> read);
  // A counter (a total that only grows, kept elsewhere) read by `read` at every scrape; series of
  // one name differ by `labels`. Call before serving.
  void AddCounter(const std::string& name, const std::string& help,
                  const prometheus::Labels& labels, std::function<double()> read);
  std::string Render();

 private:
  static constexpr std::size_t kStatusSlots = 16;
  static std::size_t StatusSlot(int status);

  std::shared_ptr<prometheus::Registry> registry_;
  std::vector<std::string> route_names_;
  prometheus::Family<prometheus::Counter>& requests_;
  prometheus::Family<prometheus::Histogram>& latency_;
  std::vector<prometheus::Histogram*> latency_by_route_;
  // Created on first use: route x status slot.
  std::vector<std::array<std::atomic<prometheus::Counter*>, kStatusSlots>> requests_by_route_;
  std::mutex create_mutex_;
  struct ReadGauge {
    prometheus::Gauge* gauge;
    std::function<double()> read;
  };
  std::vector<ReadGauge> read_gauges_;
  struct ReadCounter {
    prometheus::Counter* counter;
    std::function<double()> read;
    double exported = 0;  // what the counter holds: it only takes increments
  };
  std::vector<ReadCounter> read_counters_;
  std::map<std::string, prometheus::Family<prometheus::Counter>*> counter_families_;
  std::mutex render_mutex_;
};

}  // namespace redpacket::http
