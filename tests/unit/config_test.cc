// Configuration precedence: flag > REDPACKET_* environment > TOML file > default.
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "app/config.h"

namespace redpacket::app {
namespace {

class ConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    file_ = std::filesystem::temp_directory_path() / ("redpacket-config-test-" + std::to_string(getpid()) + ".toml");
    std::ofstream(file_) << "port = 9001\nmax_count = 7\ndata_dir = \"/from/file\"\ndev = true\n";
  }
  void TearDown() override {
    std::filesystem::remove(file_);
    unsetenv("REDPACKET_MAX_COUNT");
    unsetenv("REDPACKET_PORT");
  }
  Config Parse(std::vector<std::string> args) {
    Config config;
    CLI::App app;
    ConfigBinder binder(app, config, {"port", "max_count", "data_dir", "dev", "host", "token_secret"});
    std::vector<const char*> argv{"test"};
    for (const auto& arg : args) argv.push_back(arg.c_str());
    app.parse(static_cast<int>(argv.size()), argv.data());
    binder.ApplyConfigFile();
    return config;
  }
  std::filesystem::path file_;
};

TEST_F(ConfigTest, DefaultsWithoutAnything) {
  Config config = Parse({});
  EXPECT_EQ(config.port, 8080);
  EXPECT_EQ(config.limits.max_count, 100);
  EXPECT_FALSE(config.dev);
}

TEST_F(ConfigTest, FileFillsWhatNothingElseSet) {
  Config config = Parse({"--config", file_.string()});
  EXPECT_EQ(config.port, 9001);
  EXPECT_EQ(config.limits.max_count, 7);
  EXPECT_EQ(config.data_dir, "/from/file");
  EXPECT_TRUE(config.dev);
  EXPECT_EQ(config.host, "127.0.0.1");
}

TEST_F(ConfigTest, EnvironmentBeatsFileAndFlagBeatsEnvironment) {
  setenv("REDPACKET_MAX_COUNT", "55", 1);
  setenv("REDPACKET_PORT", "9100", 1);
  Config config = Parse({"--config", file_.string(), "--port", "9200"});
  EXPECT_EQ(config.limits.max_count, 55);  // env over file
  EXPECT_EQ(config.port, 9200);            // flag over env
}

TEST_F(ConfigTest, UnknownKeyInTheFileIsAnError) {
  std::ofstream(file_) << "max_cuont = 7\n";
  EXPECT_THROW(Parse({"--config", file_.string()}), std::runtime_error);
}

TEST_F(ConfigTest, TokenSecretRequiredOutsideDev) {
  Config config;
  EXPECT_THROW(EffectiveTokenSecrets(config), std::runtime_error);
  config.dev = true;
  EXPECT_EQ(EffectiveTokenSecrets(config), std::vector<std::string>{kDevTokenSecret});
  config.token_secret = "s";
  EXPECT_EQ(EffectiveTokenSecrets(config), std::vector<std::string>{"s"});
}

TEST_F(ConfigTest, TokenSecretIsARotationList) {
  Config config = Parse({"--token-secret", "new, old"});
  EXPECT_EQ(EffectiveTokenSecrets(config), (std::vector<std::string>{"new", "old"}));
  config.token_secret = "new,";
  EXPECT_THROW(EffectiveTokenSecrets(config), std::runtime_error);
}

}  // namespace
}  // namespace redpacket::app
