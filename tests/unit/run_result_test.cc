#include "engine/run_result.h"

#include <gtest/gtest.h>

namespace airlock::engine {
namespace {

TEST(RunResult, Base64MatchesTheStandard) {
  EXPECT_EQ(base64_encode(""), "");
  EXPECT_EQ(base64_encode("f"), "Zg==");
  EXPECT_EQ(base64_encode("fo"), "Zm8=");
  EXPECT_EQ(base64_encode("foo"), "Zm9v");
  EXPECT_EQ(base64_encode(std::string("\xff\x00\x01", 3)), "/wAB");
}

TEST(RunResult, JsonCarriesTextAsTextAndBinaryAsBase64) {
  RunResult result;
  result.status = RunStatus::ok;
  result.exit_code = 0;
  result.stdout_data = "h\xc3\xa9llo\n";
  result.stderr_data = std::string("\xff\x00", 2);
  auto json = to_json(result);
  EXPECT_EQ(json["status"], "ok");
  EXPECT_EQ(json["stdout"], "h\xc3\xa9llo\n");
  EXPECT_EQ(json["stdout_encoding"], "utf-8");
  EXPECT_EQ(json["stderr"], "/wA=");
  EXPECT_EQ(json["stderr_encoding"], "base64");
  EXPECT_TRUE(json["signal"].is_null());
  for (const char* key : {"setup_ms", "boot_ms", "execute_ms", "total_ms"}) {
    EXPECT_TRUE(json["timing"].contains(key)) << key;
  }
  EXPECT_NO_THROW(json.dump());
}

TEST(RunResult, ExitCodesFollowTheDocumentedTable) {
  RunResult result;
  result.status = RunStatus::error;
  result.exit_code = 3;
  EXPECT_EQ(exit_code_for(result), 3);
  result.status = RunStatus::timeout;
  EXPECT_EQ(exit_code_for(result), 124);
  result.status = RunStatus::internal_error;
  EXPECT_EQ(exit_code_for(result), 125);
  result.status = RunStatus::output_limit;
  EXPECT_EQ(exit_code_for(result), 125);
  result.status = RunStatus::oom;
  EXPECT_EQ(exit_code_for(result), 137);
  result.status = RunStatus::killed;
  result.signal = 15;
  EXPECT_EQ(exit_code_for(result), 143);
}

}  // namespace
}  // namespace airlock::engine
