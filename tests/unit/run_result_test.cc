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

// The text a response carries is the same document as to_json(), whichever
// encoding each stream takes, with or without a trace.
TEST(RunResult, JsonTextIsTheSameDocument) {
  RunResult result;
  result.status = RunStatus::timeout;
  result.signal = 9;
  result.error = "ran past \"10 s\"";
  result.network_denied = {"10.0.0.1:80 (not allowed)"};
  for (const auto& [out, err] : std::vector<std::pair<std::string, std::string>>{
           {"h\xc3\xa9llo\n\t\"q\"\\", std::string("\xff\x00", 2)},
           {std::string(1000, '\x01'), ""},
           {"", "plain"},
           {std::string("a\x00b", 3), "\x1b[1m"}}) {
    result.stdout_data = out;
    result.stderr_data = err;
    result.timing.trace =
        result.timing.trace ? std::nullopt : std::optional<RunTrace>(RunTrace{1, 2, 3, 4, 5, 6});
    EXPECT_EQ(nlohmann::json::parse(to_json_text(result)), to_json(result)) << to_json_text(result);
  }
}

TEST(RunResult, OutputThatEscapingWouldInflateGoesAsBase64) {
  // Any text stays text: newlines, tabs and quotes cost 2 bytes each at most.
  for (const std::string text : {"\n\n\n", "a\tb\n", "\"quoted\"\\", "", "h\xc3\xa9llo"}) {
    EncodedOutput encoded = encode_output(text);
    EXPECT_STREQ(encoded.encoding, "utf-8") << text;
    EXPECT_EQ(encoded.data, text);
  }
  // Control bytes would cost 6 each as \u00XX: base64 carries them in 4/3.
  const std::string controls(3000, '\x01');
  EncodedOutput encoded = encode_output(controls);
  EXPECT_STREQ(encoded.encoding, "base64");
  EXPECT_EQ(base64_decode(encoded.data), controls);
  EXPECT_EQ(encoded.data.size(), 4000u);
  // Mixed in with text, a few do not change the encoding.
  EXPECT_STREQ(encode_output("progress\x1b[1mbold\x1b[0m\n").encoding, "utf-8");
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
