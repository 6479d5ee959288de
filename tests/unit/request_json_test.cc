// The one JSON form of a run request: what the CLI writes is what airlockd reads.
#include "engine/request_json.h"

#include <gtest/gtest.h>

#include "common/error.h"

namespace airlock::engine {
namespace {

TEST(RequestJson, EveryFieldSurvivesTheRoundTrip) {
  RunRequest request;
  request.language = "python";
  request.code = "print(1)";
  request.env = {{"A", "1"}, {"B", "two words"}};
  request.timeout_s = 7;
  request.memory_mb = 512;
  request.cpus = 2;
  request.max_processes = 64;
  request.max_open_files = 128;
  request.disk_mb = 32;
  request.network = "allow:api.test";
  request.mounts = {parse_mount("ro:/srv/data:/data")};
  request.stdout_limit = 1234;
  request.stderr_limit = 567;
  request.stdin_source.data = "input";
  request.fresh_interpreter = true;
  const RunRequest back = run_request_from_json(nlohmann::json::parse(to_json(request).dump()));
  // to_json writes every field, so equal forms are equal requests.
  EXPECT_EQ(to_json(back), to_json(request));
  EXPECT_EQ(back.mounts, request.mounts);
  EXPECT_TRUE(back.fresh_interpreter);
}

TEST(RequestJson, RefusalsNameTheField) {
  auto refusal = [](const std::string& body) -> std::string {
    try {
      run_request_from_json(parse_json_object(body));
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::invalid_argument);
      return e.what();
    }
    return "accepted";
  };
  EXPECT_EQ(refusal(R"({"code":"x"})"), "missing field 'language' (or an 'image' to take it from)");
  EXPECT_EQ(refusal(R"({"language":"python"})"), "missing field 'code'");
  EXPECT_EQ(refusal(R"({"language":"python","code":"x","colour":1})"), "unknown field 'colour'");
  EXPECT_EQ(refusal(R"({"language":"python","code":"x","memory_mb":"big"})"),
            "field 'memory_mb' must be an integer");
  EXPECT_EQ(refusal(R"({"language":"python","code":"x","cpus":18446744073709551615})"),
            "field 'cpus' is out of range");
  EXPECT_EQ(refusal(R"({"language":"python","code":"x","stdout_limit":-1})"),
            "field 'stdout_limit' must not be negative");
  EXPECT_EQ(refusal("[1]"), "request body is not a JSON object");
  EXPECT_EQ(refusal("{"), "request body is not valid JSON");
}

}  // namespace
}  // namespace airlock::engine
