// ComponentList, the start and stop order of `redpacket serve`: started in the order added,
// stopped in reverse and then destroyed in reverse; a component that cannot start stops those
// already started (in reverse) and its error goes on; a part never started is never stopped.
#include "app/components.h"

#include <gtest/gtest.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace redpacket::app {
namespace {

class Recorder final : public Component {
 public:
  Recorder(std::string name, std::vector<std::string>& log, bool fail = false)
      : name_(std::move(name)), log_(log), fail_(fail) {}
  ~Recorder() override { log_.push_back("destroy " + name_); }
  std::string name() const override { return name_; }
  void Start() override {
    if (fail_) throw std::runtime_error("cannot reach " + name_);
    log_.push_back("start " + name_);
  }
  void Stop() override { log_.push_back("stop " + name_); }

 private:
  std::string name_;
  std::vector<std::string>& log_;
  bool fail_;
};

TEST(ComponentListTest, StartsInOrderStopsAndDestroysInReverse) {
  std::vector<std::string> log;
  {
    ComponentList parts;
    parts.Add(std::make_unique<Recorder>("backend", log));
    parts.Add(std::make_unique<Step>(
        "server", [&log] { log.push_back("start server"); },
        [&log] { log.push_back("stop server"); }));
    Recorder& store = parts.Add(std::make_unique<Recorder>("store", log));
    EXPECT_EQ(store.name(), "store");
    parts.StartAll();
    parts.StopAll();
    parts.StopAll();  // idempotent
    log.push_back("list goes");
  }
  const std::vector<std::string> expected{"start backend", "start server",  "start store",
                                          "stop store",    "stop server",   "stop backend",
                                          "list goes",     "destroy store", "destroy backend"};
  EXPECT_EQ(log, expected);
}

TEST(ComponentListTest, AFailedStartStopsWhatStartedAndTheErrorGoesOn) {
  std::vector<std::string> log;
  ComponentList parts;
  parts.Add(std::make_unique<Recorder>("backend", log));
  parts.Add(std::make_unique<Recorder>("server", log));
  parts.Add(std::make_unique<Recorder>("kafka", log, /*fail=*/true));
  parts.Add(std::make_unique<Recorder>("never", log));
  try {
    parts.StartAll();
    FAIL() << "StartAll should have thrown";
  } catch (const std::runtime_error& error) {
    EXPECT_STREQ(error.what(), "cannot reach kafka");
  }
  const std::vector<std::string> expected{"start backend", "start server", "stop server",
                                          "stop backend"};
  EXPECT_EQ(log, expected);
  parts.StopAll();
  EXPECT_EQ(log, expected) << "nothing is stopped twice";
}

TEST(ComponentListTest, TheDestructorStopsWhatIsStillRunning) {
  std::vector<std::string> log;
  {
    ComponentList parts;
    parts.Add(std::make_unique<Recorder>("a", log));
    parts.Add(std::make_unique<Recorder>("b", log));
    parts.StartAll();
  }
  const std::vector<std::string> expected{"start a", "start b",   "stop b",
                                          "stop a",  "destroy b", "destroy a"};
  EXPECT_EQ(log, expected);
}

}  // namespace
}  // namespace redpacket::app
