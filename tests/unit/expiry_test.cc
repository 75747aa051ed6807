// Expiry on a manual clock, in-process: the embedded backend (journal, SQLite, memory store) and
// the service, with time moved by hand. A packet is grabbable until the millisecond before its
// expiry and refused from then on; the sweep refunds the remainder once, also after a restart;
// nothing here sleeps on the expiry.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <future>
#include <map>
#include <memory>
#include <string>

#include "domain/clock.h"
#include "http/access/token.h"
#include "http/client/client.h"
#include "http/handlers/api.h"
#include "http/transport/server.h"
#include "service/red_packet_service.h"
#include "tests/support/embedded_in_process.h"

namespace redpacket {
namespace {

namespace fs = std::filesystem;
using domain::ErrorCode;
using domain::PacketStatus;
using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr std::int64_t kDeposit = 100000;

domain::PacketSpec Spec(domain::UserId sender, domain::PacketKind kind, domain::Cents total,
                        std::int64_t count, std::int64_t expires_in_s) {
  domain::PacketSpec spec;
  spec.sender_id = sender;
  spec.kind = kind;
  spec.total_cents = total;
  spec.count = count;
  spec.expires_in_s = expires_in_s;
  return spec;
}

// Runs `call(done)` and waits for `done`'s value (service callbacks run on service threads).
template <class T, class Call>
T Await(Call call) {
  std::promise<T> promise;
  call([&promise](T value) { promise.set_value(std::move(value)); });
  return promise.get_future().get();
}

class ExpiryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "rp-expiry-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    root_ = pattern;
    StartServer();
    sender_ = CreateFundedUser("sender");
    // Far from the real clock on purpose: if anything still read the system clock, nothing here
    // would ever expire, and the tests would fail.
    marker_ = CreatePacket(Spec(sender_, domain::PacketKind::kEqual, 100, 100, 86400));
  }
  void TearDown() override {
    StopServer();
    fs::remove_all(root_);
  }

  // The parts of `redpacket serve` in embedded mode, in its order (without HTTP).
  void StartServer() {
    testing_support::InProcessOptions options;
    options.data_dir = root_;
    options.clock = &clock_;
    server_ = std::make_unique<testing_support::EmbeddedInProcess>(options);
    service_ = &server_->service();
  }
  void StopServer() {
    service_ = nullptr;
    server_.reset();  // stops each part in reverse, then destroys it
  }

  domain::UserId CreateFundedUser(const std::string& name) {
    auto user = Await<domain::Result<ledger::UserRecord>>(
        [&](auto done) { service_->CreateUser(name, done); });
    EXPECT_TRUE(user.ok());
    auto balance = Await<domain::Result<domain::Cents>>(
        [&](auto done) { service_->Deposit(user->user_id, kDeposit, "", done); });
    EXPECT_TRUE(balance.ok());
    return user->user_id;
  }
  domain::PacketId CreatePacket(const domain::PacketSpec& spec) {
    auto created = Await<domain::Result<ledger::PacketRecord>>(
        [&](auto done) { service_->CreatePacket(spec, "", done); });
    EXPECT_TRUE(created.ok()) << created.error().message;
    return created.ok() ? created->packet_id : 0;
  }
  store::GrabResult Grab(domain::PacketId packet, domain::UserId user) {
    return Await<store::GrabResult>([&](auto done) { service_->Grab(packet, user, done); });
  }
  store::PacketSnapshot Details(domain::PacketId packet) {
    auto snapshot = Await<domain::Result<store::PacketSnapshot>>(
        [&](auto done) { service_->GetPacket(packet, done); });
    EXPECT_TRUE(snapshot.ok());
    return snapshot.ok() ? *snapshot : store::PacketSnapshot{};
  }
  // Balance + pending: what the user owns, whether or not the ledger has applied it yet.
  domain::Cents Owned(domain::UserId user) {
    auto view = Await<domain::Result<service::BalanceView>>(
        [&](auto done) { service_->Balance(user, done); });
    EXPECT_TRUE(view.ok());
    return view.ok() ? view->balance_cents + view->pending_cents : -1;
  }
  // Sweeps, then waits until what the sweep appended is durable and its completions ran: a grab
  // of the marker packet is appended after it, and the journal acknowledges in order.
  void SweepAndSettle() {
    server_->SweepNow();
    ASSERT_EQ(Grab(marker_, next_marker_user_++).code, ErrorCode::kOk);
  }

  fs::path root_;
  domain::ManualTimeSource clock_{domain::FromUnixMillis(1'900'000'000'000)};  // 2030
  std::unique_ptr<testing_support::EmbeddedInProcess> server_;
  service::RedPacketService* service_ = nullptr;
  domain::UserId sender_ = 0;
  domain::PacketId marker_ = 0;
  domain::UserId next_marker_user_ = 900000;
};

TEST_F(ExpiryTest, GrabbableUntilExpiryThenRefusedAndTheRemainderRefundedOnce) {
  const domain::PacketId packet =
      CreatePacket(Spec(sender_, domain::PacketKind::kLucky, 1000, 10, 60));
  domain::Cents grabbed = 0;
  for (domain::UserId user = 500; user < 503; ++user) {
    const store::GrabResult grab = Grab(packet, user);
    ASSERT_EQ(grab.code, ErrorCode::kOk) << grab.message;
    grabbed += grab.amount_cents;
  }
  const domain::Cents before = Owned(sender_);

  clock_.Advance(seconds(60) - milliseconds(1));  // the last millisecond before expiry
  const store::GrabResult last_chance = Grab(packet, 503);
  ASSERT_EQ(last_chance.code, ErrorCode::kOk) << last_chance.message;
  grabbed += last_chance.amount_cents;
  SweepAndSettle();
  EXPECT_EQ(Details(packet).record.status, PacketStatus::kOpen);
  EXPECT_EQ(Owned(sender_), before);

  clock_.Advance(milliseconds(1));  // expires_at: expired, before any sweep
  EXPECT_EQ(Grab(packet, 504).code, ErrorCode::kGone);
  EXPECT_EQ(Details(packet).record.status, PacketStatus::kExpired);
  EXPECT_EQ(Owned(sender_), before);

  SweepAndSettle();
  const domain::Cents refund = 1000 - grabbed;
  store::PacketSnapshot details = Details(packet);
  EXPECT_EQ(details.record.status, PacketStatus::kRefunded);
  ASSERT_TRUE(details.record.refund_cents.has_value());
  EXPECT_EQ(*details.record.refund_cents, refund);
  EXPECT_EQ(Owned(sender_), before + refund);
  EXPECT_EQ(Grab(packet, 505).code, ErrorCode::kGone);
  const store::GrabResult repeat = Grab(packet, 500);
  EXPECT_EQ(repeat.code, ErrorCode::kConflict);

  // More sweeps, later, and a restart (the journal replayed, the ledger reloaded): still once.
  clock_.Advance(hours(1));
  SweepAndSettle();
  SweepAndSettle();
  EXPECT_EQ(Owned(sender_), before + refund);
  StopServer();
  StartServer();
  SweepAndSettle();
  EXPECT_EQ(Owned(sender_), before + refund);
  EXPECT_EQ(Grab(packet, 506).code, ErrorCode::kGone);
  details = Details(packet);
  EXPECT_EQ(details.record.status, PacketStatus::kRefunded);
  EXPECT_EQ(details.record.refund_cents.value_or(-1), refund);
  for (domain::UserId user = 500; user < 504; ++user) grabbed -= Owned(user);
  EXPECT_EQ(grabbed, 0) << "every grabber owns what they grabbed";
}

TEST_F(ExpiryTest, AnExhaustedPacketIsNotRefunded) {
  const domain::PacketId packet =
      CreatePacket(Spec(sender_, domain::PacketKind::kEqual, 300, 2, 60));
  ASSERT_EQ(Grab(packet, 600).code, ErrorCode::kOk);
  ASSERT_EQ(Grab(packet, 601).code, ErrorCode::kOk);
  const domain::Cents before = Owned(sender_);
  clock_.Advance(seconds(61));
  SweepAndSettle();
  const store::PacketSnapshot details = Details(packet);
  EXPECT_EQ(details.record.status, PacketStatus::kExhausted);
  EXPECT_FALSE(details.record.refund_cents.has_value());
  EXPECT_EQ(Owned(sender_), before);
  EXPECT_EQ(Grab(packet, 602).code, ErrorCode::kGone);
}

TEST_F(ExpiryTest, AnUntouchedPacketIsRefundedWhole) {
  const domain::PacketId packet =
      CreatePacket(Spec(sender_, domain::PacketKind::kLucky, 777, 7, 120));
  const domain::Cents before = Owned(sender_);
  clock_.Advance(seconds(119));
  SweepAndSettle();
  EXPECT_EQ(Owned(sender_), before);
  clock_.Advance(seconds(1));
  SweepAndSettle();
  EXPECT_EQ(Owned(sender_), before + 777);
  EXPECT_EQ(Details(packet).record.refund_cents.value_or(-1), 777);
}

// The API checks a token's expiry on the clock it was handed: a token that expires at t + 60 s
// is accepted until the second before, and refused (401) from then on.
TEST_F(ExpiryTest, ATokenExpiresOnTheInjectedClock) {
  http::ApiOptions api_options;
  api_options.token_secrets = {"secret"};
  api_options.clock = &clock_;
  http::Api api(api_options, *service_);
  http::ServerOptions server_options;
  server_options.port = 0;  // any free port
  http::Server server(server_options, api);
  server.Start();
  const std::int64_t now_s = domain::ToUnixMillis(clock_.Now()) / 1000;
  const std::map<std::string, std::string> bearer{
      {"Authorization", "Bearer " + http::SignToken({sender_, now_s + 60, false}, "secret")}};
  const std::string balance = "/v1/users/" + std::to_string(sender_) + "/balance";
  http::Client client("127.0.0.1", server.port());
  EXPECT_EQ(client.Get(balance, bearer).status, 200);
  clock_.Advance(seconds(59));
  EXPECT_EQ(client.Get(balance, bearer).status, 200);
  clock_.Advance(seconds(1));
  EXPECT_EQ(client.Get(balance, bearer).status, 401);
  server.Stop(milliseconds(0));
}

}  // namespace
}  // namespace redpacket
