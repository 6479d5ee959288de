// Warm pools within bounds: only the operator shapes them, there are at most
// --max-pools of the callers' own, unused ones expire, and every VM (pooled
// or running) fits one budget of memory and vCPUs.

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/child_process.h"
#include "common/io.h"
#include "support/airlock_cli.h"
#include "support/daemon_fixture.h"
#include "support/test_daemon.h"

namespace airlock::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

class PoolLimits : public DaemonFixture {
 protected:
  std::vector<std::string> pool_names() {
    std::vector<std::string> names;
    // Parsed into a variable: a range-for over a temporary's member would dangle.
    const json listing = json::parse(daemon_->get("/v1/pools").body);
    for (const auto& pool : listing.at("pools")) names.push_back(pool.at("name").get<std::string>());
    return names;
  }
};

TEST_F(PoolLimits, OnlyTheOperatorShapesPools) {
  const std::string token = (dir_ / "token").string(), operator_token = (dir_ / "operator-token").string();
  write_file(token, "caller-token-0123456789\n", 0600);
  write_file(operator_token, "operator-token-0123456789\n", 0600);
  const int port = free_loopback_port();
  const std::string base = "http://127.0.0.1:" + std::to_string(port);
  ASSERT_TRUE(daemon_->start({"--pool-size", "0", "--listen", "127.0.0.1:" + std::to_string(port),
                              "--token-file", token, "--operator-token-file", operator_token}));
  auto tcp = [&](const std::string& bearer, const std::string& method, const std::string& path,
                 const std::string& body) {
    std::vector<std::string> argv = {
        "curl",         "-s", "-o",   "/dev/null", "-w",
        "%{http_code}", "-X", method, "-H",        "Authorization: Bearer " + bearer,
        base + path};
    if (!body.empty()) argv.insert(argv.end() - 1, {"-d", body});
    return std::atoi(run_command(argv, {"PATH=/usr/bin:/bin"}, std::chrono::seconds(60)).output.c_str());
  };
  const std::string profile = R"({"language":"shell","memory_mb":384,"target":0})";
  EXPECT_EQ(tcp("caller-token-0123456789", "GET", "/v1/pools", ""), 200) << "callers may look";
  EXPECT_EQ(tcp("caller-token-0123456789", "POST", "/v1/pools", profile), 403);
  EXPECT_EQ(tcp("caller-token-0123456789", "PUT", "/v1/pools/shell-256m", R"({"target":3})"), 403);
  EXPECT_EQ(tcp("caller-token-0123456789", "DELETE", "/v1/pools/shell-256m", ""), 403);
  EXPECT_EQ(tcp("operator-token-0123456789", "POST", "/v1/pools", profile), 201);
  EXPECT_EQ(tcp("operator-token-0123456789", "DELETE", "/v1/pools/shell-384m", ""), 200);
  EXPECT_EQ(tcp("operator-token-0123456789", "DELETE", "/v1/pools/shell-384m", ""), 404);
  // The Unix socket's peers (airlockd's own uid, or root) are its operator.
  EXPECT_EQ(daemon_->post("/v1/pools", profile).status, 201);
  EXPECT_EQ(daemon_->request({"-X", "DELETE", "http://airlockd/v1/pools/shell-384m"}).status, 200);
}

TEST_F(PoolLimits, CreatedPoolsAreCappedAndExpireWhenUnused) {
  ASSERT_TRUE(daemon_->start({"--pool-size", "0", "--max-pools", "2", "--pool-idle-timeout", "2"}));
  EXPECT_EQ(daemon_->post("/v1/pools", R"({"language":"shell","memory_mb":384,"target":0})").status, 201);
  EXPECT_EQ(daemon_->post("/v1/pools", R"({"language":"shell","memory_mb":512,"target":0})").status, 201);
  auto third = daemon_->post("/v1/pools", R"({"language":"shell","memory_mb":640,"target":0})");
  EXPECT_EQ(third.status, 409) << third.body;
  EXPECT_NE(third.body.find("--max-pools"), std::string::npos) << third.body;
  // Unused, they go; the daemon's own pools stay.
  for (int i = 0; i < 100 && pool_names().size() > 3; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  auto names = pool_names();
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"javascript-256m", "python-256m", "shell-256m"}));
  EXPECT_EQ(daemon_->post("/v1/pools", R"({"language":"shell","memory_mb":640,"target":0})").status, 201);
}

TEST_F(PoolLimits, PooledAndRunningVmsShareOneBudget) {
  // Room for two 256 MiB VMs (+64 MiB each), for three pools that each want two.
  ASSERT_TRUE(daemon_->start({"--pool-size", "2", "--vm-memory-budget-mb", "640"}));
  // Watched until the budget is full of ready VMs (templates may be built
  // first, which takes a while on a loaded machine), and then a while more.
  int most = 0;
  int ready = 0;
  int settled = 0;
  for (int i = 0; i < 600 && settled < 15; ++i) {
    most = std::max(most, static_cast<int>(qemu_processes(dir_.string() + "/").size()));
    ready = 0;
    const json listing = json::parse(daemon_->get("/v1/pools").body);
    for (const auto& pool : listing.at("pools")) ready += pool.at("ready").get<int>();
    if (ready == 2) ++settled;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  EXPECT_LE(most, 2) << "more VMs than the budget has room for";
  EXPECT_EQ(ready, 2) << daemon_->get("/v1/pools").body;
  // A run whose pool got no room takes a ready VM's room rather than wait for nothing.
  for (const auto& [language, code] : std::vector<std::pair<std::string, std::string>>{
           {"shell", "echo 1"}, {"python", "print(1)"}, {"javascript", "console.log(1)"}}) {
    auto reply = daemon_->run(run_request(language, code));
    EXPECT_EQ(reply.status, 200) << language << ": " << reply.body;
    EXPECT_NE(reply.body.find("\"status\":\"ok\""), std::string::npos) << language << ": " << reply.body;
  }
}

// Sends `run` to the daemon, SIGTERMs the daemon once the run has taken the
// shell pool's VM, and returns the run's answer once the daemon has exited 0.
HttpReply run_across_sigterm(TestDaemon& daemon, const std::string& run) {
  HttpReply reply;
  std::atomic<bool> answered = false;
  std::thread caller([&] {
    reply = daemon.post("/v1/run", run);
    answered = true;
  });
  for (int i = 0; i < 200 && json::parse(daemon.get("/v1/pools").body)["pools"][2]["in_use"] == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  daemon.process().kill(SIGTERM);
  // However slow the machine is to deliver the signal: the daemon stops
  // taking requests while the run it has is still going.
  bool refused = false;
  while (!refused && !answered) {
    refused = daemon.get("/v1/health").status != 200;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_TRUE(refused) << "a draining daemon took new requests until its run ended";
  caller.join();
  EXPECT_EQ(daemon.process().wait_or_kill(std::chrono::seconds(30)).exit_code, 0);
  return reply;
}

// SIGTERM drains: no new connection is taken, a run in progress finishes
// and its caller gets its result, then every VM is destroyed.
TEST_F(PoolLimits, SigtermLetsRunningRequestsFinish) {
  ASSERT_TRUE(daemon_->start({"--pool-size", "1"}));
  ASSERT_TRUE(daemon_->wait_for_ready("shell-256m"));
  HttpReply reply =
      run_across_sigterm(*daemon_, R"({"language":"shell","code":"echo started; sleep 3; echo finished"})");
  EXPECT_EQ(reply.status, 200) << reply.body;
  const json result = json::parse(reply.body, nullptr, false);
  EXPECT_EQ(result.value("status", ""), "ok") << reply.body;
  EXPECT_EQ(result.value("stdout", ""), "started\nfinished\n") << reply.body;
}

// A run still going when the grace period is over is cancelled, and its
// caller still gets that result; the daemon then exits.
TEST_F(PoolLimits, SigtermCancelsWhatOutlastsTheGracePeriod) {
  ASSERT_TRUE(daemon_->start({"--pool-size", "1", "--drain-timeout", "1"}));
  ASSERT_TRUE(daemon_->wait_for_ready("shell-256m"));
  HttpReply reply = run_across_sigterm(*daemon_, R"({"language":"shell","code":"sleep 60"})");
  EXPECT_EQ(reply.status, 200) << reply.body;
  const json result = json::parse(reply.body, nullptr, false);
  EXPECT_EQ(result.value("status", ""), "killed") << reply.body;
  EXPECT_EQ(result.value("error", ""), "cancelled") << reply.body;
}

}  // namespace
}  // namespace airlock::testing
