// airlockd end to end: its HTTP API (docs/api.yaml) on a private socket, the
// CLI going through it, admission control and shutdown.

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "common/child_process.h"
#include "common/error.h"
#include "support/airlock_cli.h"
#include "support/test_daemon.h"

namespace airlock::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

class Daemon : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("airlock-d-" + std::to_string(::getpid()) + "-" +
            std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()).substr(0, 24));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    daemon_.emplace(dir_);
    socket_ = daemon_->socket();
  }
  void TearDown() override {
    stop_daemon();
    EXPECT_TRUE(qemu_processes(dir_.string() + "/").empty()) << "QEMU left running";
    fs::remove_all(dir_);
  }

  std::vector<std::string> environment() const { return daemon_->environment(); }

  void start_daemon(std::vector<std::string> extra = {}) {
    ASSERT_TRUE(daemon_->start(extra)) << "airlockd did not come up";
  }

  void stop_daemon() {
    auto status = daemon_->stop();
    if (!status) return;
    EXPECT_EQ(status->exit_code, 0) << "airlockd did not drain and exit cleanly";
    EXPECT_FALSE(fs::exists(socket_)) << "socket left behind";
  }

  HttpReply request(const std::vector<std::string>& curl_args) { return daemon_->request(curl_args); }
  HttpReply get(const std::string& path) { return daemon_->get(path); }
  HttpReply post(const std::string& path, const std::string& body,
                 const std::string& accept = "application/json") {
    return daemon_->post(path, body, accept);
  }

  void wait_for_ready(const std::string& pool) {
    ASSERT_TRUE(daemon_->wait_for_ready(pool))
        << "pool " << pool << " never got ready: " << get("/v1/pools").body;
  }

  static void expect_error(const HttpReply& reply, int status, const std::string& code,
                           const std::string& needle) {
    EXPECT_EQ(reply.status, status) << reply.body;
    json body = json::parse(reply.body, nullptr, false);
    ASSERT_TRUE(body.is_object() && body.contains("error")) << reply.body;
    EXPECT_EQ(body["error"]["code"], code);
    EXPECT_TRUE(body["error"]["retryable"].is_boolean());
    EXPECT_NE(body["error"]["message"].get<std::string>().find(needle), std::string::npos) << reply.body;
  }

  fs::path dir_;
  std::string socket_;
  std::optional<TestDaemon> daemon_;
};

TEST_F(Daemon, RunFromTheWarmPoolMatchesTheContract) {
  start_daemon();
  EXPECT_EQ(fs::status(socket_).permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write);
  wait_for_ready("python-256m");
  auto reply =
      post("/v1/run", R"J({"language":"python","code":"print(6*7)","env":{"A":"b"},"timeout_s":10})J");
  ASSERT_EQ(reply.status, 200) << reply.body;
  json result = json::parse(reply.body);
  std::set<std::string> keys;
  for (auto& [key, value] : result.items()) keys.insert(key);
  EXPECT_EQ(keys,
            (std::set<std::string>{"status", "exit_code", "signal", "stdout", "stdout_encoding", "stderr",
                                   "stderr_encoding", "stdout_truncated", "stderr_truncated", "timing",
                                   "accel", "from_snapshot", "pool_hit", "error", "network_denied"}));
  EXPECT_EQ(result["status"], "ok");
  EXPECT_EQ(result["stdout"], "42\n");
  EXPECT_EQ(result["pool_hit"], true);
  // The run's trace: the guest's parts lie inside the host's exec span,
  // and the engine's parts inside its total (a millisecond of rounding).
  const json& trace = result["timing"]["trace_us"];
  for (const char* part : {"acquire", "exec", "finish", "guest_start", "guest_run", "guest_end"}) {
    EXPECT_GE(trace[part].get<int64_t>(), 0) << part << trace;
  }
  EXPECT_GT(trace["guest_run"].get<int64_t>(), 0) << trace;
  EXPECT_GT(trace["exec"].get<int64_t>(), trace["guest_start"].get<int64_t>() +
                                              trace["guest_run"].get<int64_t>() +
                                              trace["guest_end"].get<int64_t>())
      << trace;
  EXPECT_LE(
      (trace["acquire"].get<int64_t>() + trace["exec"].get<int64_t>() + trace["finish"].get<int64_t>()) /
          1000,
      result["timing"]["total_ms"].get<int64_t>() + 1)
      << result["timing"];

  json pools = json::parse(get("/v1/pools").body);
  for (const auto& pool : pools["pools"]) {
    if (pool["name"] == "python-256m") {
      EXPECT_EQ(pool["hits"], 1);
    }
  }
  std::string metrics = get("/metrics").body;
  EXPECT_NE(metrics.find("airlock_runs_total{language=\"python\",status=\"ok\"} 1"), std::string::npos);
  EXPECT_NE(metrics.find("airlock_pool_hits_total{pool=\"python-256m\"} 1"), std::string::npos);
}

TEST_F(Daemon, StreamsEventsInOrderThenTheResult) {
  start_daemon();
  auto reply =
      post("/v1/run", R"J({"language":"shell","code":"echo a; sleep 0.2; echo b >&2; sleep 0.2; echo c"})J",
           "application/x-ndjson");
  ASSERT_EQ(reply.status, 200);
  std::vector<json> events;
  std::istringstream lines(reply.body);
  for (std::string line; std::getline(lines, line);) events.push_back(json::parse(line));
  ASSERT_EQ(events.size(), 4u) << reply.body;
  EXPECT_EQ(events[0], (json{{"type", "stdout"}, {"data", "a\n"}, {"encoding", "utf-8"}}));
  EXPECT_EQ(events[1], (json{{"type", "stderr"}, {"data", "b\n"}, {"encoding", "utf-8"}}));
  EXPECT_EQ(events[2], (json{{"type", "stdout"}, {"data", "c\n"}, {"encoding", "utf-8"}}));
  EXPECT_EQ(events[3]["type"], "result");
  EXPECT_EQ(events[3]["result"]["status"], "ok");
}

TEST_F(Daemon, BadRequestsGetTypedErrors) {
  start_daemon({"--pool-size", "0"});
  expect_error(post("/v1/run", R"J({"language":"python","code":"x","extra":1})J"), 400, "invalid_argument",
               "unknown field 'extra'");
  expect_error(post("/v1/run", "{not json"), 400, "invalid_argument", "not valid JSON");
  expect_error(post("/v1/run", R"J({"language":"python","code":"x","timeout_s":0})J"), 400,
               "invalid_argument", "timeout");
  expect_error(post("/v1/run", R"J({"language":"python","code":"x","timeout_s":"1"})J"), 400,
               "invalid_argument", "must be an integer");
  expect_error(post("/v1/run", R"J({"code":"x"})J"), 400, "invalid_argument", "missing field 'language'");
  expect_error(get("/v1/nothing"), 404, "not_found", "no endpoint");
  expect_error(request({"-X", "PUT", "-d", R"J({"target":1})J", "http://airlockd/v1/pools/nope"}), 404,
               "not_found", "no pool named 'nope'");
  const std::string big =
      std::string(R"J({"language":"python","code":")J") + std::string(3 << 20, 'x') + "\"}";
  const std::string big_file = (dir_ / "big.json").string();
  { std::ofstream(big_file) << big; }
  expect_error(request({"-d", "@" + big_file, "http://airlockd/v1/run"}), 413, "too_large", "exceeds");
}

TEST_F(Daemon, PoolsResizeAtRuntime) {
  start_daemon({"--pool-size", "0"});
  auto reply = request({"-X", "PUT", "-d", R"J({"target":2})J", "http://airlockd/v1/pools/shell-256m"});
  ASSERT_EQ(reply.status, 200) << reply.body;
  EXPECT_EQ(json::parse(reply.body)["target"], 2);
  for (int i = 0; i < 600; ++i) {
    bool full = false;
    const json listing = json::parse(get("/v1/pools").body);
    for (const auto& pool : listing["pools"]) {
      if (pool["name"] == "shell-256m") full = pool["ready"] == 2;
    }
    if (full) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(qemu_processes(dir_.string() + "/").size(), 2u);
  expect_error(request({"-X", "PUT", "-d", R"J({"target":65})J", "http://airlockd/v1/pools/shell-256m"}), 400,
               "invalid_argument", "out of range");
}

TEST_F(Daemon, RequestsBeyondTheLimitGet429) {
  start_daemon({"--pool-size", "0", "--max-concurrent", "1", "--max-queued", "0"});
  HttpReply slow;
  std::thread holder(
      [&] { slow = post("/v1/run", R"J({"language":"shell","code":"sleep 3; echo done"})J"); });
  // The late request comes once the slow one holds the only slot, as the daemon reports it.
  bool admitted = false;
  for (int i = 0; i < 300 && !admitted; ++i) {
    admitted = get("/metrics").body.find("\nairlock_runs_running 1\n") != std::string::npos;
    if (!admitted) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_TRUE(admitted) << get("/metrics").body;
  expect_error(post("/v1/run", R"J({"language":"shell","code":"echo late"})J"), 429, "overloaded",
               "try again");
  EXPECT_TRUE(
      json::parse(post("/v1/run", R"J({"language":"shell","code":"true"})J").body)["error"]["retryable"]);
  holder.join();
  EXPECT_EQ(json::parse(slow.body)["stdout"], "done\n");
  EXPECT_NE(get("/metrics").body.find("airlock_queue_rejections_total 2"), std::string::npos);
}

TEST_F(Daemon, TheCliGoesThroughTheDaemonWithTheSameOutputAndExitCodes) {
  start_daemon();
  CliOptions options;
  options.extra_env = {"AIRLOCK_SOCKET=" + socket_, "AIRLOCK_RUNTIME_DIR=" + dir_.string()};
  auto result = run_cli({"-v", "run", "--lang", "shell", "echo out; echo err >&2; exit 3"}, options);
  EXPECT_EQ(result.exit_code, 3);
  EXPECT_EQ(result.out, "out\n");
  EXPECT_NE(result.err.find("err\n"), std::string::npos);
  EXPECT_NE(result.err.find("running through airlockd"), std::string::npos) << result.err;
  wait_for_ready("python-256m");
  // A pipe whose writer has finished is sent whole (the harness writes and
  // closes it before the CLI looks).
  options.stdin_data = "piped input";
  auto piped =
      run_cli({"-v", "run", "--json", "--lang", "python", "import sys; print(sys.stdin.read())"}, options);
  json parsed = json::parse(piped.out);
  EXPECT_EQ(parsed["stdout"], "piped input\n");
  options.stdin_data = "";
  auto timeout = run_cli({"run", "--timeout", "1", "--lang", "shell", "sleep 10"}, options);
  EXPECT_EQ(timeout.exit_code, 124);
}

TEST_F(Daemon, ACrashedDaemonLeavesNoVmsAndItsSuccessorReapsItsDirectories) {
  start_daemon();
  wait_for_ready("shell-256m");
  std::set<std::string> old_dirs;
  for (auto& entry : fs::directory_iterator(dir_)) {
    if (entry.path().filename().string().rfind("run-", 0) == 0) old_dirs.insert(entry.path().string());
  }
  ASSERT_FALSE(old_dirs.empty());
  daemon_->process().kill(SIGKILL);
  daemon_->process().wait();
  // Pool VMs die with the daemon (PR_SET_PDEATHSIG); give the kernel a moment.
  for (int i = 0; i < 50 && !qemu_processes(dir_.string() + "/").empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(qemu_processes(dir_.string() + "/").empty()) << "VMs outlived a SIGKILLed daemon";
  EXPECT_TRUE(fs::exists(socket_));  // the dead daemon's socket file; the successor replaces it
  start_daemon();
  for (const auto& old : old_dirs) EXPECT_FALSE(fs::exists(old)) << old << " was not reaped";
}

TEST_F(Daemon, TcpOnLoopbackNeedsTheBearerToken) {
  const std::string token_file = (dir_ / "token").string();
  { std::ofstream(token_file) << "s3cret-token-0123456789\n"; }
  fs::permissions(token_file, fs::perms::owner_read | fs::perms::owner_write);
  const std::string listen = "127.0.0.1:" + std::to_string(free_loopback_port());
  start_daemon({"--pool-size", "0", "--listen", listen, "--token-file", token_file});
  auto tcp = [&](std::vector<std::string> extra) {
    std::vector<std::string> argv = {"curl", "-s", "-w", "\n%{http_code}"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    argv.push_back("http://" + listen + "/v1/health");
    auto result = run_command(argv, {"PATH=/usr/bin:/bin"}, std::chrono::seconds(30));
    return std::atoi(result.output.c_str() + result.output.rfind('\n') + 1);
  };
  EXPECT_EQ(tcp({}), 401);
  EXPECT_EQ(tcp({"-H", "Authorization: Bearer wrong-token-0123456789"}), 401);
  EXPECT_EQ(tcp({"-H", "Authorization: Bearer s3cret-token-0123456789"}), 200);
}

TEST_F(Daemon, RefusesUnsafeTcpSettings) {
  const std::string token_file = (dir_ / "token").string();
  { std::ofstream(token_file) << "s3cret-token-0123456789"; }
  fs::permissions(token_file, fs::perms::owner_read | fs::perms::owner_write | fs::perms::others_read);
  auto run_daemon = [&](std::vector<std::string> args) {
    std::vector<std::string> argv = {fs::path(AIRLOCK_BIN).parent_path() / "airlockd", "--socket", socket_};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_command(argv, environment(), std::chrono::seconds(60));
  };
  auto world_readable =
      run_daemon({"--pool-size", "0", "--listen", "127.0.0.1:1", "--token-file", token_file});
  EXPECT_NE(world_readable.status.exit_code, 0);
  EXPECT_NE(world_readable.output.find("readable by others"), std::string::npos) << world_readable.output;
  fs::permissions(token_file, fs::perms::owner_read | fs::perms::owner_write);
  auto public_address =
      run_daemon({"--pool-size", "0", "--listen", "0.0.0.0:8719", "--token-file", token_file});
  EXPECT_NE(public_address.status.exit_code, 0);
  EXPECT_NE(public_address.output.find("loopback"), std::string::npos) << public_address.output;
  auto no_token = run_daemon({"--pool-size", "0", "--listen", "127.0.0.1:8719"});
  EXPECT_NE(no_token.output.find("--token-file"), std::string::npos) << no_token.output;
}

TEST_F(Daemon, PooledNodeIsStartedAfterRestoreAndBehavesLikeNode) {
  start_daemon();
  std::vector<std::string> randoms;
  for (int i = 0; i < 2; ++i) {
    wait_for_ready("javascript-256m");
    json result = json::parse(post("/v1/run", R"J({"language":"javascript","code":
      "console.log(JSON.stringify([process.argv.slice(1), require.main === module, Math.random()]))"})J")
                                  .body);
    ASSERT_EQ(result["status"], "ok") << result.dump();
    EXPECT_EQ(result["pool_hit"], true);
    json printed = json::parse(result["stdout"].get<std::string>());
    EXPECT_EQ(printed[0], json::array({"/home/sandbox/main.js"}));
    EXPECT_EQ(printed[1], true);
    randoms.push_back(printed[2].dump());
  }
  // Each pooled Node started after its clone's restore: no shared V8 RNG state.
  EXPECT_NE(randoms[0], randoms[1]);
  wait_for_ready("javascript-256m");
  json thrown =
      json::parse(post("/v1/run", R"J({"language":"javascript","code":"throw new Error('boom')"})J").body);
  EXPECT_EQ(thrown["exit_code"], 1);
  EXPECT_NE(thrown["stderr"].get<std::string>().find(
                "Error: boom\n    at Object.<anonymous> (/home/sandbox/main.js:1"),
            std::string::npos)
      << thrown["stderr"];
  // Node's status as `node main.js` gives it, told before its teardown:
  // every exit listener and timer has printed by then.
  const std::pair<const char*, int> endings[] = {
      {"process.exitCode = 4; console.log('a')", 4},
      {"console.log('a'); process.exit(7)", 7},
      {"process.on('exit', (code) => console.log('a', code)); process.exitCode = 300", 300 & 0xff},
      {"setTimeout(() => { console.log('a'); process.exitCode = 3 }, 50)", 3},
      {"Promise.reject(new Error('rejected'))", 1},
      {"if (Object.keys(process).includes('emit')) throw new Error('seen'); console.log('a')", 0},
  };
  for (const auto& [code, status] : endings) {
    wait_for_ready("javascript-256m");
    json ended = json::parse(post("/v1/run", json{{"language", "javascript"}, {"code", code}}.dump()).body);
    EXPECT_EQ(ended["exit_code"], status) << code << ended.dump();
    EXPECT_EQ(ended["pool_hit"], true) << code;
    if (status != 1) {
      EXPECT_EQ(ended["stdout"].get<std::string>().substr(0, 1), "a") << code << ended.dump();
    }
  }
}

TEST_F(Daemon, AClientThatHangsUpCancelsItsRun) {
  start_daemon({"--pool-size", "0"});
  // curl gives up after 2 s; the run would take 100.
  auto reply = request(
      {"--max-time", "2", "-d", R"J({"language":"shell","code":"sleep 100"})J", "http://airlockd/v1/run"});
  EXPECT_EQ(reply.status, 0);  // no response: curl timed out
  bool killed = false;
  for (int i = 0; i < 100 && !killed; ++i) {
    killed = get("/metrics").body.find(R"(airlock_runs_total{language="shell",status="killed"} 1)") !=
             std::string::npos;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(killed) << "the run went on after its client left";
  // Its VM is destroyed right after the result, on the engine's retiring thread.
  for (int i = 0; i < 100 && !qemu_processes(dir_.string() + "/").empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(qemu_processes(dir_.string() + "/").empty());
}

TEST_F(Daemon, QemuKilledBehindARunningRequestGivesItAClearErrorAndThePoolRefills) {
  start_daemon({"--pool-size", "1"});
  wait_for_ready("python-256m");
  HttpReply reply;
  std::thread client([&] {
    reply =
        post("/v1/run",
             R"J({"language":"python","code":"import time\nprint('running', flush=True)\ntime.sleep(60)"})J");
  });
  // Once the request holds the pooled VM, kill every QEMU of this daemon.
  for (int i = 0; i < 200; ++i) {
    if (get("/metrics").body.find(R"(airlock_pool_in_use{pool="python-256m"} 1)") != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  std::this_thread::sleep_for(std::chrono::seconds(1));
  const auto killed_at = std::chrono::steady_clock::now();
  for (pid_t pid : qemu_processes(dir_.string() + "/")) ::kill(pid, SIGKILL);
  client.join();
  EXPECT_LT(std::chrono::steady_clock::now() - killed_at, std::chrono::seconds(10));
  ASSERT_EQ(reply.status, 200) << reply.body;
  const json result = json::parse(reply.body);
  EXPECT_EQ(result["status"], "internal_error");
  EXPECT_NE(result["error"].get<std::string>().find("the VM stopped unexpectedly"), std::string::npos)
      << reply.body;
  EXPECT_NE(get("/metrics").body.find("airlock_vm_crashes_total 1"), std::string::npos);
  // The pool replaces what it lost, and the next request is served.
  wait_for_ready("python-256m");
  const json next = json::parse(post("/v1/run", R"J({"language":"python","code":"print('again')"})J").body);
  EXPECT_EQ(next["stdout"], "again\n");
}

TEST_F(Daemon, EveryRunGetsANewVm) {
  start_daemon();
  // The first run must really leave its mark, or the second's "absent" proves nothing.
  json first = json::parse(
      post("/v1/run", R"J({"language":"shell","code":"echo x > /tmp/mark; cat /tmp/mark"})J").body);
  ASSERT_EQ(first["status"], "ok") << first.dump();
  ASSERT_EQ(first["stdout"], "x\n") << first.dump();
  json second =
      json::parse(post("/v1/run", R"J({"language":"shell","code":"cat /tmp/mark || echo absent"})J").body);
  EXPECT_EQ(second["stdout"], "absent\n");
}

}  // namespace
}  // namespace airlock::testing
