#include "protocol/messages.h"

#include <gtest/gtest.h>

#include "common/error.h"

namespace airlock::protocol {
namespace {

void expect_protocol_error(const std::function<void()>& parse, const std::string& needle) {
  try {
    parse();
    FAIL() << "expected a protocol error mentioning " << needle;
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::protocol);
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(Messages, ExecRoundTrips) {
  Exec exec;
  exec.argv = {"/usr/bin/python3", "/home/sandbox/main.py"};
  exec.env = {"A=1", "B=é"};
  exec.cwd = "/home/sandbox";
  exec.stdout_limit = 5;
  exec.timeout_ms = 2000;
  exec.max_processes = 64;
  exec.max_open_files = 128;
  exec.disk_limit_bytes = 16 << 20;
  exec.prestarted = true;
  exec.job_format = "shell";
  Exec parsed = Exec::parse(exec.to_payload());
  EXPECT_EQ(parsed.job_format, "shell");
  EXPECT_EQ(parsed.max_processes, 64u);
  EXPECT_EQ(parsed.max_open_files, 128u);
  EXPECT_EQ(parsed.disk_limit_bytes, 16u << 20);
  EXPECT_TRUE(parsed.prestarted);
  EXPECT_EQ(parsed.argv, exec.argv);
  EXPECT_EQ(parsed.env, exec.env);
  EXPECT_EQ(parsed.cwd, exec.cwd);
  EXPECT_EQ(parsed.stdout_limit, 5u);
  EXPECT_EQ(parsed.timeout_ms, 2000u);
}

TEST(Messages, ExecJobFormatsAreJsonOrShell) {
  Exec exec;
  exec.argv = {"/bin/true"};
  EXPECT_EQ(Exec::parse(exec.to_payload()).job_format, "json");
  std::string payload = exec.to_payload();
  payload.replace(payload.find("\"json\""), 6, "\"perl\"");
  expect_protocol_error([&] { Exec::parse(payload); }, "job_format");
}

TEST(Messages, ExitReportRoundTrips) {
  ExitReport report;
  report.signal = 9;
  report.oom = true;
  report.stdout_truncated = true;
  report.start_us = 310;
  report.run_us = 900;
  ExitReport parsed = ExitReport::parse(report.to_payload());
  EXPECT_EQ(parsed.start_us, 310u);
  EXPECT_EQ(parsed.run_us, 900u);
  EXPECT_FALSE(parsed.exit_code);
  EXPECT_EQ(parsed.signal, 9);
  EXPECT_TRUE(parsed.oom);
  EXPECT_TRUE(parsed.stdout_truncated);
}

TEST(Messages, HostileExitReportsAreRejected) {
  expect_protocol_error([] { ExitReport::parse("not json"); }, "not valid JSON");
  expect_protocol_error([] { ExitReport::parse("[1,2]"); }, "not a JSON object");
  expect_protocol_error([] { ExitReport::parse("{}"); }, "missing field");
  const std::string base =
      R"("oom":false,"output_limit":false,"timed_out":false,"stdout_truncated":false,"stderr_truncated":false,"duration_us":1)";
  expect_protocol_error([&] { ExitReport::parse(R"({"exit_code":1,"signal":9,)" + base + "}"); },
                        "exactly one");
  expect_protocol_error([&] { ExitReport::parse(R"({"exit_code":null,"signal":null,)" + base + "}"); },
                        "exactly one");
  expect_protocol_error([&] { ExitReport::parse(R"({"exit_code":300,"signal":null,)" + base + "}"); },
                        "out of range");
  expect_protocol_error([&] { ExitReport::parse(R"({"exit_code":"0","signal":null,)" + base + "}"); },
                        "not an integer");
  EXPECT_EQ(ExitReport::parse(R"({"exit_code":3,"signal":null,)" + base + "}").exit_code, 3);
}

TEST(Messages, HelloNeedsItsFields) {
  expect_protocol_error([] { Hello::parse(R"({"protocol":1})"); }, "agent_version");
  expect_protocol_error([] { Hello::parse(R"({"protocol":-1,"agent_version":"x","uptime_ms":1})"); },
                        "non-negative");
  Hello hello = Hello::parse(R"({"protocol":1,"agent_version":"0.1","uptime_ms":500})");
  EXPECT_EQ(hello.uptime_ms, 500);
}

TEST(Messages, InvalidUtf8NeverThrowsWhenEncoding) {
  ErrorReport report{std::string("bad \xff byte")};
  EXPECT_NO_THROW(report.to_payload());
}

}  // namespace
}  // namespace airlock::protocol
