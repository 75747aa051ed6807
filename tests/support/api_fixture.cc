#include "tests/support/api_fixture.h"

#include <stdlib.h>

#include <boost/beast/http/verb.hpp>
#include <future>
#include <stdexcept>
#include <thread>

#include "app/config.h"
#include "audit/audit.h"
#include "http/access/token.h"
#include "http/handlers/api.h"
#include "tests/support/embedded_in_process.h"

namespace redpacket::testing_support {

namespace fs = std::filesystem;
namespace json = boost::json;

std::int64_t ApiReply::Int(std::string_view key) const {
  return json.as_object().at(key).as_int64();
}

std::string ApiReply::String(std::string_view key) const {
  return std::string(json.as_object().at(key).as_string());
}

std::string ApiReply::Error() const {
  const json::object* object = json.if_object();
  if (object == nullptr || !object->contains("error")) return "";
  const json::value& error = object->at("error");
  return error.is_string() ? std::string(error.as_string()) : "";
}

std::string Describe(const ApiReply& reply) {
  return std::to_string(reply.status) + " " + reply.body;
}

ApiFixture::ApiFixture() : ApiFixture(ApiFixtureOptions{}) {}

namespace {

// The configuration of `serve` that these options stand for.
app::Config ConfigOf(const ApiFixtureOptions& options) {
  app::Config config;
  config.dev = options.dev;
  config.token_secret = options.token_secret;
  config.rate_limit_per_user = options.rate_limit_per_user;
  config.rate_limit_burst = options.rate_limit_burst;
  return config;
}

}  // namespace

ApiFixture::ApiFixture(ApiFixtureOptions options)
    : options_(options),
      clock_(options.start),
      random_(options.seed),
      token_secrets_(app::EffectiveTokenSecrets(ConfigOf(options))) {}

ApiFixture::~ApiFixture() { Stop(); }

void ApiFixture::SetUp() {
  std::string pattern = (fs::temp_directory_path() / "rp-api-XXXXXX").string();
  ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
  root_ = pattern;
  Start();
}

void ApiFixture::TearDown() {
  Stop();
  std::error_code ignored;
  fs::remove_all(root_, ignored);
}

// `redpacket serve` in embedded mode (src/app/serve_command.cc), without the socket.
void ApiFixture::Start() {
  InProcessOptions options;
  options.data_dir = root_;
  options.clock = &clock_;
  options.random = &random_;
  options.limits = options_.limits;
  embedded_ = std::make_unique<EmbeddedInProcess>(options);
  api_ = std::make_unique<http::Api>(app::ApiOptionsFrom(ConfigOf(options_), clock_),
                                     embedded_->service());
}

void ApiFixture::Stop() {
  api_.reset();
  embedded_.reset();  // stops as SIGTERM does
}

void ApiFixture::Restart() {
  Stop();
  Start();
}

void ApiFixture::ExpectAuditOk() {
  Stop();
  const audit::AuditReport report = audit::RunAudit(root_);
  EXPECT_FALSE(report.checked.empty()) << "the audit checked nothing";
  for (const std::string& violation : report.violations) ADD_FAILURE() << "audit: " << violation;
  Start();
}

void ApiFixture::SweepNow() { embedded_->SweepNow(); }

std::string ApiFixture::Token(std::int64_t user, bool admin, std::chrono::seconds ttl) const {
  return http::SignToken({user, domain::ToUnixSeconds(clock_.Now()) + ttl.count(), admin},
                         token_secrets_.front());
}

ApiReply ApiFixture::Call(std::string_view method, std::string_view target, std::string_view body,
                          std::int64_t user, const Headers& headers) {
  http::Request request;
  request.method = boost::beast::http::string_to_verb(method);
  request.target = std::string(target);
  request.body = std::string(body);
  if (user != 0) request.user_id_header = std::to_string(user);
  for (const auto& [name, value] : headers) {
    if (name == "Authorization") {
      request.authorization = value;
      request.has_authorization = true;
    } else if (name == "X-User-Id") {
      request.user_id_header = value;
    } else if (name == "X-Request-Id") {
      request.request_id_header = value;
    } else {
      throw std::invalid_argument("ApiFixture::Call: header " + name + " is not passed on");
    }
  }
  std::promise<http::Response> answered;
  api_->Handle(std::move(request), http::Responder([&answered](http::Response response) {
                 answered.set_value(std::move(response));
               }));
  auto future = answered.get_future();
  if (future.wait_for(std::chrono::seconds(20)) != std::future_status::ready) {
    ADD_FAILURE() << method << " " << target << ": no answer within 20 s";
    std::abort();  // the answer may still come and write into a dead promise
  }
  http::Response response = future.get();
  ApiReply reply;
  reply.status = response.status;
  reply.body = std::move(response.body);
  reply.headers = std::move(response.headers);
  reply.retry_after_s = response.retry_after_s;
  reply.allow = std::move(response.allow);
  reply.content_type = std::string(response.content_type);
  boost::system::error_code error;
  reply.json = json::parse(reply.body, error);
  if (error) reply.json = nullptr;
  return reply;
}

std::vector<ApiReply> ApiFixture::CallConcurrently(int threads, std::string_view method,
                                                   std::string_view target, std::string_view body,
                                                   std::int64_t user) {
  std::vector<ApiReply> replies(static_cast<std::size_t>(threads));
  std::vector<std::thread> callers;
  for (int i = 0; i < threads; ++i) {
    callers.emplace_back([&, i] { replies[i] = Call(method, target, body, user); });
  }
  for (auto& caller : callers) caller.join();
  return replies;
}

ApiReply ApiFixture::DetailsOnce(const std::string& packet, const std::string& status,
                                 std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  ApiReply details = Call("GET", "/v1/packets/" + packet, "", 1);
  while (details.status == 200 && details.String("status") != status &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    details = Call("GET", "/v1/packets/" + packet, "", 1);
  }
  return details;
}

std::int64_t ApiFixture::CreateUser(std::string_view name) {
  const ApiReply reply = Call("POST", "/v1/users", R"({"name":")" + std::string(name) + R"("})");
  EXPECT_EQ(reply.status, 201) << Describe(reply);
  return reply.status == 201 ? reply.Int("user_id") : 0;
}

std::int64_t ApiFixture::CreateFundedUser(std::string_view name, std::int64_t amount_cents) {
  const std::int64_t user = CreateUser(name);
  const ApiReply reply =
      Call("POST", "/v1/users/" + std::to_string(user) + "/deposit",
           R"({"amount_cents":)" + std::to_string(amount_cents) + R"(,"request_id":"fixture-)" +
               std::to_string(++next_deposit_) + R"("})");
  EXPECT_EQ(reply.status, 200) << Describe(reply);
  return user;
}

std::string ApiFixture::CreatePacket(std::int64_t sender, std::string_view body) {
  const ApiReply reply = Call("POST", "/v1/packets", body, sender);
  EXPECT_EQ(reply.status, 201) << Describe(reply);
  return reply.status == 201 ? reply.String("packet_id") : "";
}

std::int64_t ApiFixture::Balance(std::int64_t user) {
  const ApiReply reply = Call("GET", "/v1/users/" + std::to_string(user) + "/balance", "", user);
  EXPECT_EQ(reply.status, 200) << Describe(reply);
  return reply.status == 200 ? reply.Int("balance_cents") + reply.Int("pending_cents") : -1;
}

}  // namespace redpacket::testing_support
