// POST /v1/users, POST /v1/users/{id}/deposit, GET /v1/users/{id}/balance and /history.
#include <spdlog/spdlog.h>

#include "http/codec/account_json.h"
#include "http/codec/request_fields.h"
#include "http/handlers/handlers.h"

namespace redpacket::http {

void HandleCreateUser(Call& call) {
  const Reply reply = MakeReply(call);
  auto fields = ParseCreateUser(call.request.body);
  if (!fields) return reply.Error(fields.error());
  call.service().CreateUser(fields->name, [reply](domain::Result<domain::UserRecord> user) {
    if (!user) return reply.Error(user.error());
    spdlog::info("user created user_id={} request_id={}", user->user_id, reply.request_id);
    reply.Json(201, UserJson(*user));
  });
}

void HandleDeposit(Call& call) {
  const Reply reply = MakeReply(call);
  auto user_id = PathId(call, 0, domain::kMaxUserId, "user id", reply);
  if (!user_id) return;
  auto fields = ParseDeposit(call.request.body);
  if (!fields) return reply.Error(fields.error());
  call.service().Deposit(
      *user_id, fields->amount_cents, fields->request_id,
      [reply, user_id = *user_id,
       amount = fields->amount_cents](domain::Result<domain::Cents> balance) {
        if (!balance) return reply.Error(balance.error());
        spdlog::info("deposit user_id={} amount_cents={} request_id={}", user_id, amount,
                     reply.request_id);
        reply.Json(200, boost::json::object{{"user_id", user_id}, {"balance_cents", *balance}});
      });
}

void HandleBalance(Call& call) {
  const Reply reply = MakeReply(call);
  auto user_id = ReadableAccount(call, reply);
  if (!user_id) return;
  call.service().Balance(*user_id, [reply](domain::Result<service::BalanceView> view) {
    if (!view) return reply.Error(view.error());
    reply.Json(200, BalanceJson(*view));
  });
}

void HandleHistory(Call& call) {
  const Reply reply = MakeReply(call);
  auto user_id = ReadableAccount(call, reply);
  if (!user_id) return;
  auto query = ParseHistoryQuery(call.request.query());
  if (!query) return reply.Error(query.error());
  const domain::HistoryKind kind = query->kind;
  call.service().History(*user_id, kind, static_cast<int>(query->limit), query->cursor,
                         [reply, kind](domain::Result<domain::HistoryPage> page) {
                           if (!page) return reply.Error(page.error());
                           reply.Json(200, HistoryJson(*page, kind));
                         });
}

}  // namespace redpacket::http
