// The hostile test suite: every payload in payloads/ is untrusted code with
// one expected, classified outcome, run through one real airlockd (warm
// pools, the path production requests take). The header of each payload says
// what it is, the request fields it needs and what must come back:
//
//   # request: {"timeout_s": 2}
//   # expect: {"status": "timeout"}
//
// After all of them the daemon must still serve, stop cleanly, and leave no
// QEMU process, socket, run directory or overlay behind.

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>

#include "common/io.h"
#include "engine/run_result.h"
#include "support/airlock_cli.h"
#include "support/test_daemon.h"
#include "support/upstream_server.h"

namespace airlock::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr const char* kHostMarkerFile = "/tmp/airlock-adversarial-host-marker";

struct Payload {
  std::string name;  // file name
  std::string language;
  std::string code;
  json request;  // extra request fields
  json expect;
};

Payload load_payload(const fs::path& path) {
  Payload payload;
  payload.name = path.filename();
  const std::string extension = path.extension();
  payload.language = extension == ".py" ? "python" : extension == ".js" ? "javascript" : "shell";
  payload.code = read_file(path, 1 << 20);
  payload.request = json::object();
  std::istringstream lines(payload.code);
  for (std::string line; std::getline(lines, line);) {
    const size_t start = line.rfind("# ", 0) == 0 ? 2 : line.rfind("// ", 0) == 0 ? 3 : std::string::npos;
    if (start == std::string::npos) break;  // the header ends at the first line of code
    const std::string text = line.substr(start);
    if (text.rfind("request: ", 0) == 0) payload.request = json::parse(text.substr(9));
    if (text.rfind("expect: ", 0) == 0) payload.expect = json::parse(text.substr(8));
  }
  return payload;
}

std::vector<std::string> payload_names() {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(AIRLOCK_PAYLOADS)) names.push_back(entry.path().filename());
  std::sort(names.begin(), names.end());
  return names;
}

std::string output_bytes(const json& result, const std::string& stream) {
  const std::string data = result[stream].get<std::string>();
  return result[stream + "_encoding"] == "base64" ? engine::base64_decode(data) : data;
}

// One daemon for the whole suite, set up before the first test and checked
// after the last: a global environment, which gtest owns once registered.
class DaemonEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("airlock-adversarial-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    write_file(kHostMarkerFile, "a file of the host's\n");
    daemon_.emplace(dir_);
    upstream_.emplace();
    // The network payloads' names: one pinned to the local upstream, the
    // others answered like DNS with addresses the filter must refuse.
    const std::string upstream = "127.0.0.1:" + std::to_string(upstream_->port());
    up_ = daemon_->start({"--pool-size", "1", "--test-resolve", "allowed.test=" + upstream, "--test-resolve",
                          "metadata.test=169.254.169.254", "--test-resolve", "private.test=10.0.0.1",
                          "--test-resolve", "mapped.test=::ffff:127.0.0.1"},
                         {"AIRLOCK_ADVERSARIAL_SECRET=host-only"});
  }

  void TearDown() override {
    // The daemon survived everything: it still answers and runs code.
    if (up_) {
      EXPECT_EQ(daemon_->get("/v1/health").status, 200) << "airlockd stopped serving";
      auto reply = daemon_->post("/v1/run", R"J({"language":"python","code":"print('still serving')"})J");
      EXPECT_EQ(reply.status, 200);
      EXPECT_NE(reply.body.find("still serving"), std::string::npos) << reply.body;
      // The network payloads' refusals were counted by the filter, not only seen by the guest.
      std::smatch denied;
      const std::string metrics = daemon_->get("/metrics").body;
      ASSERT_TRUE(std::regex_search(metrics, denied, std::regex("airlock_network_denied_total ([0-9]+)")));
      EXPECT_GE(std::stoi(denied[1]), expected_denials) << metrics;
    }
    auto status = daemon_->stop();
    EXPECT_TRUE(status && status->exit_code == 0) << "airlockd did not drain and exit cleanly";
    daemon_.reset();
    upstream_.reset();
    EXPECT_TRUE(qemu_processes(dir_.string() + "/").empty()) << "QEMU left running";
    std::vector<std::string> left;
    for (const auto& entry : fs::directory_iterator(dir_)) left.push_back(entry.path().filename());
    EXPECT_TRUE(left.empty()) << "left behind: " << (left.empty() ? "" : left.front());
    fs::remove_all(dir_);
    fs::remove(kHostMarkerFile);
  }

  static TestDaemon& daemon() { return *daemon_; }
  // Refusals the payloads that ran proved (network_denied_contains entries).
  static inline int expected_denials = 0;
  static bool up() { return up_; }

 private:
  static inline fs::path dir_;
  static inline std::optional<TestDaemon> daemon_;
  static inline std::optional<UpstreamServer> upstream_;
  static inline bool up_ = false;
};

[[maybe_unused]] ::testing::Environment* const kDaemonEnvironment =
    ::testing::AddGlobalTestEnvironment(new DaemonEnvironment);  // gtest takes ownership

class Adversarial : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override { ASSERT_TRUE(DaemonEnvironment::up()) << "airlockd did not come up"; }
  TestDaemon& daemon() { return DaemonEnvironment::daemon(); }
};

TEST_P(Adversarial, PayloadHasItsClassifiedOutcome) {
  const Payload payload = load_payload(fs::path(AIRLOCK_PAYLOADS) / GetParam());
  ASSERT_TRUE(payload.expect.is_object()) << payload.name << " has no '# expect: {...}' line";
  // An expectation without the outcome's class would let any outcome pass.
  ASSERT_TRUE(payload.expect.contains("status")) << payload.name << ": '# expect:' must name the \"status\"";

  json request = payload.request;
  request["language"] = payload.language;
  request["code"] = payload.code;
  const HttpReply reply = daemon().post("/v1/run", request.dump());
  ASSERT_EQ(reply.status, 200) << reply.body;
  const json result = json::parse(reply.body, nullptr, false);
  ASSERT_TRUE(result.is_object()) << reply.body;
  const std::string out = output_bytes(result, "stdout");
  const std::string err = output_bytes(result, "stderr");
  const std::string shown = "\nresult: " + reply.body.substr(0, 2000);

  for (const auto& [key, want] : payload.expect.items()) {
    if (key == "status" || key == "exit_code" || key == "signal" || key == "stdout_truncated" ||
        key == "stderr_truncated") {
      EXPECT_EQ(result[key], want) << key << shown;
    } else if (key == "stdout") {
      EXPECT_EQ(out, want.get<std::string>()) << shown;
    } else if (key == "stdout_matches" || key == "stderr_matches") {
      const std::string& text = key == "stdout_matches" ? out : err;
      EXPECT_TRUE(std::regex_search(text, std::regex(want.get<std::string>()))) << key << shown;
    } else if (key == "stdout_length" || key == "stderr_length") {
      EXPECT_EQ((key == "stdout_length" ? out : err).size(), want.get<size_t>()) << key << shown;
    } else if (key == "stdout_base64_of_range") {
      std::string expected;
      for (int copy = 0; copy < want.get<int>(); ++copy) {
        for (int byte = 0; byte < 256; ++byte) expected.push_back(static_cast<char>(byte));
      }
      EXPECT_EQ(result["stdout_encoding"], "base64") << shown;
      EXPECT_EQ(out, expected) << shown;
    } else if (key == "network_denied_contains") {
      DaemonEnvironment::expected_denials += static_cast<int>(want.size());
      // Proof that the host's filter refused, not only that the guest failed.
      for (const auto& fragment : want) {
        bool found = false;
        for (const auto& reason : result["network_denied"]) {
          found = found || reason.get<std::string>().find(fragment.get<std::string>()) != std::string::npos;
        }
        EXPECT_TRUE(found) << "no network denial mentions '" << fragment.get<std::string>() << "'" << shown;
      }
    } else {
      ADD_FAILURE() << payload.name << ": unknown expectation '" << key << "'";
    }
  }
  // Whatever the payload did, the daemon still serves the next request.
  EXPECT_EQ(daemon().get("/v1/health").status, 200);
}

using HostileRequests = Adversarial;

TEST_F(HostileRequests, OversizeEmptyAndNulCodeGetClassifiedOutcomes) {
  auto oversize = daemon().post(
      "/v1/run", json{{"language", "python"}, {"code", std::string((1 << 20) + 1, '#')}}.dump());
  EXPECT_TRUE(oversize.status == 400 || oversize.status == 413) << oversize.status << " " << oversize.body;
  EXPECT_NE(oversize.body.find("code"), std::string::npos) << oversize.body;

  auto empty = daemon().post("/v1/run", R"({"language":"python","code":""})");
  EXPECT_EQ(empty.status, 400);
  EXPECT_NE(empty.body.find("code is empty"), std::string::npos) << empty.body;

  // NUL bytes are data: the interpreter refuses them like it refuses any bad source.
  auto nul = daemon().post("/v1/run",
                           json{{"language", "python"}, {"code", std::string("print(1)\0\0", 10)}}.dump());
  ASSERT_EQ(nul.status, 200) << nul.body;
  const json result = json::parse(nul.body);
  EXPECT_EQ(result["status"], "error");
  EXPECT_NE(output_bytes(result, "stderr").find("null bytes"), std::string::npos) << nul.body;

  auto wrong_type = daemon().post("/v1/run", R"J({"language":"python","code":"print(1)","pids":"many"})J");
  EXPECT_EQ(wrong_type.status, 400);
  // Unfiltered network is the daemon operator's decision, not a caller's.
  auto full = daemon().post("/v1/run", R"J({"language":"python","code":"print(1)","network":"full"})J");
  EXPECT_EQ(full.status, 400);
  EXPECT_NE(full.body.find("--allow-full-network"), std::string::npos) << full.body;
  // An allowlist names hosts; an address in it is refused, naming it.
  auto literal = daemon().post(
      "/v1/run", R"J({"language":"python","code":"print(1)","network":"allow:169.254.169.254"})J");
  EXPECT_EQ(literal.status, 400);
  EXPECT_NE(literal.body.find("'169.254.169.254' is not a domain name"), std::string::npos) << literal.body;
  // This daemon has no mount roots: no host directory can be asked for, and never writable.
  auto mount = daemon().post("/v1/run", R"J({"language":"shell","code":"true","mounts":["ro:/etc:/data"]})J");
  EXPECT_EQ(mount.status, 400);
  EXPECT_NE(mount.body.find("allows no mounts"), std::string::npos) << mount.body;
  auto writable =
      daemon().post("/v1/run", R"J({"language":"shell","code":"true","mounts":["rw:/tmp:/data"]})J");
  EXPECT_EQ(writable.status, 400);
  EXPECT_NE(writable.body.find("rw mounts are not supported"), std::string::npos) << writable.body;
  auto traversal =
      daemon().post("/v1/run", R"J({"language":"shell","code":"true","mounts":["ro:/tmp:/data/../etc"]})J");
  EXPECT_EQ(traversal.status, 400);
  EXPECT_NE(traversal.body.find("'..'"), std::string::npos) << traversal.body;
  EXPECT_NE(wrong_type.body.find("pids"), std::string::npos) << wrong_type.body;
}

INSTANTIATE_TEST_SUITE_P(Payloads, Adversarial, ::testing::ValuesIn(payload_names()),
                         [](const ::testing::TestParamInfo<std::string>& param) {
                           std::string name = param.param;
                           for (char& c : name) {
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           }
                           return name;
                         });

}  // namespace
}  // namespace airlock::testing
