// User, balance and history JSON of docs/API.md.
#include "http/codec/account_json.h"

#include <string>

namespace redpacket::http {

namespace json = boost::json;

json::object UserJson(const domain::UserRecord& user) {
  return {{"user_id", user.user_id}, {"name", user.name}, {"balance_cents", user.balance_cents}};
}

json::object BalanceJson(const service::BalanceView& balance) {
  return {{"user_id", balance.user_id},
          {"balance_cents", balance.balance_cents},
          {"pending_cents", balance.pending_cents}};
}

json::object HistoryJson(const domain::HistoryPage& page, domain::HistoryKind kind) {
  json::array items;
  for (const auto& item : page.items) {
    if (kind == domain::HistoryKind::kReceived) {
      items.push_back(json::object{{"packet_id", std::to_string(item.packet_id)},
                                   {"sender_id", item.sender_id},
                                   {"amount_cents", item.amount_cents},
                                   {"seq", item.seq},
                                   {"grabbed_at", domain::FormatTime(item.at)}});
    } else {
      items.push_back(json::object{{"packet_id", std::to_string(item.packet_id)},
                                   {"kind", domain::ToString(item.kind)},
                                   {"greeting", item.greeting},
                                   {"total_cents", item.total_cents},
                                   {"count", item.count},
                                   {"status", domain::ToString(item.status)},
                                   {"created_at", domain::FormatTime(item.at)},
                                   {"expires_at", domain::FormatTime(item.expires_at)}});
    }
  }
  json::object out{{"items", std::move(items)}};
  out["next_cursor"] = page.next_cursor ? json::value(*page.next_cursor) : json::value(nullptr);
  return out;
}

}  // namespace redpacket::http
