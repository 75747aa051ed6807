#include "tests/support/embedded_in_process.h"

#include <chrono>

#include "app/components.h"
#include "app/embedded_backend.h"
#include "app/store_component.h"
#include "service/red_packet_service.h"
#include "store/memory/memory_store.h"
#include "sweeper/sweeper.h"

namespace redpacket::testing_support {

EmbeddedInProcess::EmbeddedInProcess(InProcessOptions options) {
  app::EmbeddedOptions embedded_options;
  embedded_options.data_dir = options.data_dir;
  embedded_options.clock = options.clock;
  auto backend = std::make_unique<app::EmbeddedBackend>(embedded_options);
  app::EmbeddedBackend& embedded = *backend;
  auto store = std::make_unique<app::StoreComponent<store::PacketStore>>(
      "memory store",
      [&embedded] { return store::MakeMemoryStore(embedded.sink(), embedded.clock()); });
  service::ServiceDeps deps;
  deps.open_writer = [&embedded] { return embedded.OpenLedger(); };
  deps.open_reader = [&embedded] { return embedded.OpenLedger(); };
  deps.store = store.get();
  deps.pending = &embedded.pending();
  deps.clock = options.clock;
  deps.random = options.random;
  deps.checks = &embedded;
  service::ServiceOptions service_options;
  service_options.limits = options.limits;
  service_ = std::make_unique<service::RedPacketService>(service_options, std::move(deps));
  policy_ = std::make_unique<app::EmbeddedSweep>(*store, embedded, std::chrono::hours(1));
  // Only SweepNow() sweeps.
  auto sweeper = std::make_unique<sweeper::Sweeper>(
      *policy_, *options.clock, sweeper::SweeperOptions{std::chrono::hours(24)});
  sweeper_ = sweeper.get();
  parts_ = std::make_unique<app::ComponentList>();
  parts_->Add(std::move(backend));
  parts_->Add(std::move(store));
  parts_->Add(std::make_unique<app::Step>("catch-up", [&embedded] { embedded.CatchUp(); }));
  parts_->Add(std::make_unique<app::Step>(
      "service", [this] { service_->Start(); }, [this] { service_->Stop(); }));
  parts_->Add(std::make_unique<app::Owned<sweeper::Sweeper>>("sweeper", std::move(sweeper)));
  parts_->StartAll();
}

EmbeddedInProcess::~EmbeddedInProcess() {
  parts_.reset();  // stops each part in reverse, then destroys it
  policy_.reset();
  service_.reset();
}

void EmbeddedInProcess::SweepNow() { sweeper_->SweepNow(); }

}  // namespace redpacket::testing_support
