// The parts of `redpacket serve` in embedded mode, in-process and in its order, without HTTP: the
// embedded backend (journal + SQLite), the memory store, the service, and a sweeper that sweeps
// only when asked (SweepNow). Time is the caller's clock and the shares' randomness its RNG, so
// tests move time by hand. Used by the in-process API fixture (api_fixture.h) and by the tests
// that call the service directly (expiry_test). Test code: one test thread.
#pragma once

#include <filesystem>
#include <memory>

#include "domain/clock.h"
#include "domain/packet.h"
#include "domain/random.h"

namespace redpacket {
namespace app {
class ComponentList;
}
namespace service {
class RedPacketService;
}
namespace sweeper {
class Sweeper;
class SweepPolicy;
}  // namespace sweeper

namespace testing_support {

struct InProcessOptions {
  std::filesystem::path data_dir;
  const domain::TimeSource* clock = nullptr;  // must outlive the parts
  domain::RandomSource* random = nullptr;     // null: the service's own generator
  domain::Limits limits;
};

class EmbeddedInProcess {
 public:
  explicit EmbeddedInProcess(InProcessOptions options);  // starts every part (throws on failure)
  ~EmbeddedInProcess();  // stops them as SIGTERM does: in reverse, the journal applied
  EmbeddedInProcess(const EmbeddedInProcess&) = delete;
  EmbeddedInProcess& operator=(const EmbeddedInProcess&) = delete;

  service::RedPacketService& service() { return *service_; }
  void SweepNow();

 private:
  std::unique_ptr<service::RedPacketService> service_;
  std::unique_ptr<sweeper::SweepPolicy> policy_;
  std::unique_ptr<app::ComponentList> parts_;  // after what its parts use: it goes first
  sweeper::Sweeper* sweeper_ = nullptr;
};

}  // namespace testing_support
}  // namespace redpacket
