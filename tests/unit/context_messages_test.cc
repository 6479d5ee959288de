// Code contexts' messages (protocol/context_messages.h) and their API
// requests (engine/code_context.h): round trips, and hostile or wrong input
// refused naming what is wrong.
#include "protocol/context_messages.h"

#include <gtest/gtest.h>

#include "common/error.h"
#include "engine/code_context.h"

namespace airlock {
namespace {

using nlohmann::json;

void expect_error(ErrorCode code, const std::function<void()>& parse, const std::string& needle) {
  try {
    parse();
    FAIL() << "expected an error mentioning " << needle;
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), code) << e.what();
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(ContextMessages, RoundTrip) {
  protocol::ContextStart start;
  start.context = "c1";
  start.language = "python";
  start.exec.argv = {"python3", "-c", "pass"};
  const auto started = protocol::ContextStart::parse(start.to_payload());
  EXPECT_EQ(started.context, "c1");
  EXPECT_EQ(started.exec.argv, start.exec.argv);

  protocol::ContextRun run{"c1", std::string(100 * 1024, 'x'), 5000, 10, 20};
  const auto ran = protocol::ContextRun::parse(run.to_payload());
  EXPECT_EQ(ran.code.size(), 100u * 1024) << "a cell may be bigger than a string field";
  EXPECT_EQ(ran.timeout_ms, 5000u);
  EXPECT_EQ(ran.stderr_limit, 20u);

  protocol::ContextList list;
  list.contexts.push_back({"c1", "python", "dead", 3, 0, 1700000000000, "exited with status 1"});
  const auto listed = protocol::ContextList::parse(list.to_payload());
  ASSERT_EQ(listed.contexts.size(), 1u);
  EXPECT_EQ(listed.contexts[0].reason, "exited with status 1");
  EXPECT_EQ(listed.contexts[0].execution_count, 3u);

  protocol::ContextDone done{"timeout", 4, 1500, true, false, "killed"};
  const auto parsed = protocol::ContextDone::parse(done.to_payload());
  EXPECT_EQ(parsed.status, "timeout");
  EXPECT_TRUE(parsed.stdout_truncated);
}

TEST(ContextMessages, HostileOnesAreRefused) {
  expect_error(
      ErrorCode::protocol, [] { protocol::ContextDone::parse(R"({"status":"great"})"); }, "unknown status");
  expect_error(
      ErrorCode::protocol, [] { protocol::ContextControl::parse(R"({"context":"c","action":"rm"})"); },
      "unknown action");
  expect_error(
      ErrorCode::protocol, [] { protocol::ContextList::parse(R"({"contexts":{}})"); }, "not a list");
  expect_error(
      ErrorCode::protocol,
      [] {
        protocol::ContextRun::parse(json{
            {"context", "c"},
            {"code", std::string(300 * 1024, 'x')},
            {"timeout_ms", 0},
            {"stdout_limit", 0},
            {"stderr_limit", 0}}.dump());
      },
      "too long");
  expect_error(
      ErrorCode::protocol,
      [] { protocol::ContextStart::parse(R"({"context":"c","language":"py","exec":1})"); }, "'exec'");
}

TEST(ContextRequests, AreCheckedFieldByField) {
  EXPECT_EQ(engine::context_request_from_json({{"language", "js"}}).language, "javascript");
  EXPECT_EQ(engine::context_request_from_json({{"name", "a.b-c_1"}}).name, "a.b-c_1");
  expect_error(
      ErrorCode::invalid_argument,
      [] {
        engine::context_request_from_json({{"name", "-x"}});
      },
      "a context's name");
  expect_error(
      ErrorCode::invalid_argument,
      [] {
        engine::context_request_from_json({{"name", std::string(65, 'a')}});
      },
      "a context's name");
  expect_error(
      ErrorCode::invalid_argument,
      [] {
        engine::context_request_from_json({{"language", "ruby"}});
      },
      "not 'ruby'");
  expect_error(
      ErrorCode::invalid_argument,
      [] {
        engine::context_request_from_json({{"lang", "py"}});
      },
      "'lang'");

  const auto cell = engine::code_request_from_json({{"code", "1+1"}, {"timeout_s", 0}});
  EXPECT_EQ(cell.code, "1+1");
  EXPECT_EQ(cell.timeout_s, 0);
  expect_error(
      ErrorCode::invalid_argument, [] { engine::code_request_from_json(json::object()); }, "needs its code");
  expect_error(
      ErrorCode::invalid_argument,
      [] {
        engine::code_request_from_json({{"code", "1"}, {"timeout_s", -1}});
      },
      "timeout_s");
  expect_error(
      ErrorCode::invalid_argument,
      [] {
        engine::code_request_from_json({{"code", std::string(200 * 1024, 'x')}});
      },
      "at most");
  expect_error(
      ErrorCode::invalid_argument,
      [] {
        engine::code_request_from_json({{"code", "1"}, {"stdout_limit", 1 << 30}});
      },
      "stdout_limit");
}

}  // namespace
}  // namespace airlock
