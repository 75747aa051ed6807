// Tables of bad requests, for the in-process API tests (api_bad_input_test, api_access_test) and
// the transport's e2e table (bad_input_e2etest): a case names the request and the refusal it must
// get; ExpectRefused checks a reply against it (the status, the JSON error code, and a message
// for the client), an in-process ApiReply or an e2e Reply alike.
#pragma once

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <map>
#include <string>
#include <utility>

namespace redpacket::testing_support {

struct BadCase {
  std::string name;
  std::string method;
  std::string target;
  std::string body;
  std::map<std::string, std::string> headers;
  int status;
  std::string error;  // the expected "error" code
};

inline BadCase Bad(std::string name, std::string method, std::string target, std::string body,
                   std::map<std::string, std::string> headers, int status, std::string error) {
  return {std::move(name), std::move(method),  std::move(target),
          std::move(body), std::move(headers), status,
          std::move(error)};
}

// Reply: status, body, json (a boost::json::value) and Error(); Describe(reply) found beside it.
template <class Reply>
void ExpectRefused(const BadCase& bad, const Reply& reply) {
  EXPECT_EQ(reply.status, bad.status) << Describe(reply);
  EXPECT_EQ(reply.Error(), bad.error) << Describe(reply);
  const boost::json::object* body = reply.json.if_object();
  EXPECT_TRUE(body != nullptr && body->contains("message") && body->at("message").is_string())
      << reply.body;
}

}  // namespace redpacket::testing_support
