// The end-to-end harness, its requests: replies, the JSON API client, and the helpers of the
// stampede tests (simultaneous grabs, their tally, a grab storm on threads), plus waits.
#include <gtest/gtest.h>

#include <algorithm>
#include <latch>
#include <set>
#include <thread>

#include "harness.h"

namespace redpacket::e2e {

// ---- replies and requests ----------------------------------------------------------------------

const json::value& Reply::at(std::string_view key) const {
  if (!json.is_object()) throw std::runtime_error("not a JSON object: " + body);
  const json::value* value = json.as_object().if_contains(key);
  if (value == nullptr) throw std::runtime_error("no field " + std::string(key) + " in " + body);
  return *value;
}

std::int64_t Reply::Int(std::string_view key) const {
  const json::value& value = at(key);
  if (!value.is_int64())
    throw std::runtime_error(std::string(key) + " is not an integer in " + body);
  return value.get_int64();
}

std::string Reply::String(std::string_view key) const {
  const json::value& value = at(key);
  if (!value.is_string())
    throw std::runtime_error(std::string(key) + " is not a string in " + body);
  return std::string(value.get_string());
}

std::string Reply::Error() const {
  if (!json.is_object()) return {};
  const json::value* value = json.as_object().if_contains("error");
  return value != nullptr && value->is_string() ? std::string(value->get_string()) : std::string();
}

std::string Describe(const Reply& reply) { return std::to_string(reply.status) + " " + reply.body; }

ApiClient::ApiClient(const ServerProcess& server) : client_(server.NewClient()) {}

ApiClient::ApiClient(std::string host, std::uint16_t port)
    : client_(std::make_unique<http::Client>(std::move(host), port)) {}

Reply ApiClient::Request(std::string_view method, std::string_view target, std::string_view body,
                         std::int64_t user, const Headers& headers) {
  Headers all = headers;
  if (user != 0) all["X-User-Id"] = std::to_string(user);
  http::ClientResponse response = client_->Request(method, target, body, all);
  Reply reply{response.status, std::move(response.body), nullptr};
  boost::system::error_code error;
  json::value parsed = json::parse(reply.body, error);
  if (!error) reply.json = std::move(parsed);
  return reply;
}

Reply ApiClient::Get(std::string_view target, std::int64_t user, const Headers& headers) {
  return Request("GET", target, {}, user, headers);
}

Reply ApiClient::Post(std::string_view target, std::string_view body, std::int64_t user,
                      const Headers& headers) {
  return Request("POST", target, body, user, headers);
}

namespace {
void Expect(const Reply& reply, int status, std::string_view what) {
  if (reply.status != status) {
    throw std::runtime_error(std::string(what) + ": expected " + std::to_string(status) + ", got " +
                             Describe(reply));
  }
}
}  // namespace

std::int64_t ApiClient::CreateUser(std::string_view name) {
  const Reply reply = Post("/v1/users", json::serialize(json::object{{"name", name}}));
  Expect(reply, 201, "POST /v1/users");
  return reply.Int("user_id");
}

void ApiClient::Deposit(std::int64_t user, std::int64_t amount_cents) {
  const Reply reply = Post("/v1/users/" + std::to_string(user) + "/deposit",
                           json::serialize(json::object{{"amount_cents", amount_cents}}));
  Expect(reply, 200, "deposit");
}

std::int64_t ApiClient::CreateFundedUser(std::string_view name, std::int64_t amount_cents) {
  const std::int64_t user = CreateUser(name);
  Deposit(user, amount_cents);
  return user;
}

std::string ApiClient::CreatePacket(std::int64_t sender, std::string_view body) {
  const Reply reply = Post("/v1/packets", body, sender);
  Expect(reply, 201, "POST /v1/packets");
  return reply.String("packet_id");
}

ApiClient::Balance ApiClient::GetBalance(std::int64_t user) {
  const Reply reply = Get("/v1/users/" + std::to_string(user) + "/balance", user);
  Expect(reply, 200, "GET balance");
  return {reply.Int("balance_cents"), reply.Int("pending_cents")};
}

json::object ApiClient::GetPacket(std::string_view packet_id, std::int64_t as_user) {
  const Reply reply = Get("/v1/packets/" + std::string(packet_id), as_user);
  Expect(reply, 200, "GET packet");
  return reply.json.as_object();
}

std::vector<Reply> SimultaneousGrabs(int clients, std::int64_t first_user, const std::string& packet_id,
                                     const std::function<const ServerProcess&(int)>& server_for) {
  const std::string path = "/v1/packets/" + packet_id + "/grab";
  std::vector<Reply> replies(static_cast<std::size_t>(clients));
  std::latch connected(clients);
  RunThreads(clients, [&](int i) {
    ApiClient client(server_for(i));
    client.Get("/healthz");  // connect first, so the grabs leave together
    connected.arrive_and_wait();
    replies[static_cast<std::size_t>(i)] = client.Post(path, "", first_user + i);
  });
  return replies;
}

void TallyGrabs(const std::vector<Reply>& replies, std::int64_t first_user, const std::string& packet_id,
                std::int64_t shares, StampedeTally* tally) {
  for (std::size_t i = 0; i < replies.size(); ++i) {
    const Reply& reply = replies[i];
    const std::int64_t user = first_user + static_cast<std::int64_t>(i);
    if (reply.status == 410) {
      EXPECT_EQ(reply.Error(), "gone") << reply.body;
      ++tally->gone;
      continue;
    }
    ASSERT_EQ(reply.status, 200) << "user " << user << ": " << Describe(reply);
    EXPECT_EQ(reply.String("packet_id"), packet_id);
    EXPECT_EQ(reply.Int("user_id"), user);
    const GrabRecord record{user, reply.Int("amount_cents"), reply.Int("seq")};
    EXPECT_GE(record.amount_cents, 1);
    EXPECT_EQ(reply.Int("remaining_count"), shares - record.seq) << reply.body;
    EXPECT_TRUE(tally->seqs.insert(record.seq).second) << "seq " << record.seq << " given twice";
    EXPECT_TRUE(tally->winners.emplace(user, record).second) << "user " << user << " twice";
    tally->sum += record.amount_cents;
  }
}

void ExpectEveryShareTakenOnce(const StampedeTally& tally, int clients, std::int64_t shares,
                               std::int64_t total_cents) {
  EXPECT_EQ(tally.winners.size(), static_cast<std::size_t>(shares));
  EXPECT_EQ(tally.gone, clients - shares);
  EXPECT_EQ(tally.sum, total_cents);
  ASSERT_EQ(tally.seqs.size(), static_cast<std::size_t>(shares));
  EXPECT_EQ(*tally.seqs.begin(), 1);
  EXPECT_EQ(*tally.seqs.rbegin(), shares);
}

void WaitForPacketStatus(ApiClient& api, const std::string& packet_id, std::string_view status,
                         json::object* details) {
  ASSERT_TRUE(WaitUntil(
      [&] {
        *details = api.GetPacket(packet_id);
        return details->at("status").as_string() == status;
      },
      Scaled(milliseconds(15000)), milliseconds(50)))
      << "not " << status << ": " << json::serialize(*details);
}

std::map<std::int64_t, GrabRecord> GrabsByUser(const json::object& packet) {
  std::map<std::int64_t, GrabRecord> grabs;
  for (const json::value& item : packet.at("grabs").as_array()) {
    const json::object& grab = item.as_object();
    GrabRecord record{grab.at("user_id").as_int64(), grab.at("amount_cents").as_int64(),
                      grab.at("seq").as_int64()};
    if (!grabs.emplace(record.user_id, record).second) {
      throw std::runtime_error("user " + std::to_string(record.user_id) +
                               " appears twice in the grabs");
    }
  }
  return grabs;
}

GrabStorm::GrabStorm(const ServerProcess& server, const std::string& packet_id, int threads,
                     std::atomic<std::int64_t>& next_user)
    : path_("/v1/packets/" + packet_id + "/grab"), next_user_(next_user) {
  running_.store(threads);
  for (int i = 0; i < threads; ++i) {
    threads_.emplace_back(&GrabStorm::Run, this, std::make_unique<ApiClient>(server));
  }
}

GrabStorm::~GrabStorm() {
  Stop();
  for (auto& thread : threads_) {
    if (thread.joinable()) thread.join();
  }
}

void GrabStorm::Run(std::unique_ptr<ApiClient> client) {
  // Bounded even if the server misbehaved and never said 410.
  constexpr int kMostRequests = 1'000'000;
  for (int i = 0; i < kMostRequests && !stop_.load(); ++i) {
    const std::int64_t user = next_user_.fetch_add(1);
    const Reply reply = client->Post(path_, "", user);
    std::lock_guard lock(mutex_);
    if (reply.status == 0) {
      // Refused or closed before the reply began is fine (the server is gone); a reply cut off in
      // the middle is not.
      if (reply.body.find("partial message") != std::string::npos) {
        result_.unexpected.push_back("user " + std::to_string(user) +
                                     ": a truncated reply: " + reply.body);
      }
      ++result_.transport_errors;
      break;
    }
    if (reply.status == 410 && reply.Error() == "gone") {
      ++result_.gone;
      break;
    }
    const json::object* body = reply.json.if_object();
    if (reply.status == 200 && body != nullptr && body->contains("amount_cents") &&
        body->contains("seq")) {
      result_.acknowledged.push_back({user, reply.Int("amount_cents"), reply.Int("seq")});
      acknowledged_count_.fetch_add(1);
      continue;
    }
    result_.unexpected.push_back("user " + std::to_string(user) + ": " + Describe(reply));
    break;
  }
  running_.fetch_sub(1);
}

bool GrabStorm::WaitForAcknowledged(std::size_t count, milliseconds timeout) const {
  return WaitUntil([&] { return acknowledged_count_.load() >= count || running_.load() == 0; },
                   timeout, milliseconds(1)) &&
         acknowledged_count_.load() >= count;
}

GrabStorm::Result GrabStorm::Join() {
  for (auto& thread : threads_) {
    if (thread.joinable()) thread.join();
  }
  std::lock_guard lock(mutex_);
  return result_;
}

bool WaitUntil(const std::function<bool()>& done, milliseconds timeout, milliseconds interval) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    if (done()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(interval);
  }
}

void RunThreads(int n, const std::function<void(int)>& fn) {
  std::vector<std::thread> threads;
  threads.reserve(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) threads.emplace_back(fn, i);
  for (auto& thread : threads) thread.join();
}

}  // namespace redpacket::e2e
