// The JSON of a user's account as the /v1/users endpoints answer it (docs/API.md): the new user,
// the balance, a page of history. Pure functions; thread-safe.
#pragma once

#include <boost/json/object.hpp>

#include "domain/records.h"
#include "service/red_packet_service.h"

namespace redpacket::http {

// {"user_id","name","balance_cents"}
boost::json::object UserJson(const domain::UserRecord& user);
// {"user_id","balance_cents","pending_cents"}
boost::json::object BalanceJson(const service::BalanceView& balance);
// {"items":[...],"next_cursor":"..."|null}; the items' fields depend on `kind` (received: the
// grabs the user took; sent: the packets the user sent).
boost::json::object HistoryJson(const domain::HistoryPage& page, domain::HistoryKind kind);

}  // namespace redpacket::http
