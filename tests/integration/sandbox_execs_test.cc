// Many execs in one sandbox (docs/api.yaml, /v1/sandboxes/{id}/execs): side
// by side, in the background, followed, signalled, fed stdin, each ending
// only its own processes. Through a real airlockd and the CLI.

#include <gtest/gtest.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "common/child_process.h"
#include "common/io.h"
#include "engine/sandbox_json.h"
#include "support/airlock_cli.h"
#include "support/daemon_fixture.h"
#include "support/test_daemon.h"

namespace airlock::testing {
namespace {

using nlohmann::json;

class SandboxExecs : public DaemonFixture {
 protected:
  std::string create_shell() {
    auto reply = daemon_->post("/v1/sandboxes", R"({"language":"shell"})");
    EXPECT_EQ(reply.status, 201) << reply.body;
    return json::parse(reply.body).value("id", "");
  }
  json post(const std::string& path, const json& body, int expected_status) {
    auto reply = daemon_->post(path, body.dump());
    EXPECT_EQ(reply.status, expected_status) << path << ": " << reply.body;
    return json::parse(reply.body, nullptr, false);
  }
  json exec(const std::string& id, std::vector<std::string> argv, json extra = json::object()) {
    extra["argv"] = std::move(argv);
    return post("/v1/sandboxes/" + id + "/execs", extra, extra.value("background", false) ? 202 : 200);
  }
  json exec_info(const std::string& id, const std::string& exec_id) {
    return json::parse(daemon_->get("/v1/sandboxes/" + id + "/execs/" + exec_id).body, nullptr, false);
  }
  // Waits (up to 30 s) until the exec has exited; its info then.
  json wait_exited(const std::string& id, const std::string& exec_id) {
    json info;
    for (int i = 0; i < 300; ++i) {
      info = exec_info(id, exec_id);
      if (info.value("state", "") == "exited") break;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return info;
  }
  // How many processes of the sandbox user run `sleep SECONDS`.
  int sleepers(const std::string& id, const std::string& seconds) {
    const std::string script =
        "for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' < $f 2>/dev/null; echo; done"
        " | grep -c '^sleep " +
        seconds + " $' || true";
    const json result = exec(id, {"sh", "-c", script});
    return std::stoi(result.value("stdout", "-1"));
  }
};

TEST_F(SandboxExecs, EachExecEndsOnlyItsOwnProcessesDaemonisedOnesToo) {
  ASSERT_TRUE(daemon_->start({"--pool-size", "0"}));
  const std::string id = create_shell();
  const json background = exec(id, {"sleep", "600"}, {{"background", true}});
  ASSERT_EQ(background.value("state", ""), "running") << background.dump();
  EXPECT_EQ(background["id"], "ex-1");
  // A grandchild that holds the exec's pipes, and one that let go of them
  // and left its parent: both belong to the exec that started them.
  const json forker =
      exec(id, {"sh", "-c", "( sleep 501 & ) ; ( sleep 502 >/dev/null 2>&1 & ) ; echo forked"});
  EXPECT_EQ(forker["stdout"], "forked\n") << forker.dump();
  EXPECT_EQ(sleepers(id, "501"), 0) << "a daemonised child outlived its exec";
  EXPECT_EQ(sleepers(id, "502"), 0) << "a detached child outlived its exec";
  EXPECT_EQ(sleepers(id, "600"), 1) << "another exec's end killed a background exec";
  EXPECT_EQ(exec_info(id, "ex-1")["state"], "running");
  const json sandbox = json::parse(daemon_->get("/v1/sandboxes/" + id).body);
  EXPECT_EQ(sandbox["state"], "busy") << sandbox.dump();
  EXPECT_EQ(sandbox["running_execs"], 1) << sandbox.dump();
}

TEST_F(SandboxExecs, ABackgroundExecIsFollowedSignalledAndFedStdin) {
  ASSERT_TRUE(daemon_->start({"--pool-size", "0"}));
  const std::string id = create_shell();
  const std::string trapper =
      exec(id, {"sh", "-c", "trap 'echo got-term; exit 3' TERM; echo waiting; while :; do sleep 0.1; done"},
           {{"background", true}})["id"];
  // Its output so far, while it runs.
  json running;
  for (int i = 0; i < 100; ++i) {
    running = exec_info(id, trapper);
    if (running.value("stdout", "") == "waiting\n") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(running.value("stdout", ""), "waiting\n") << running.dump();
  EXPECT_EQ(post("/v1/sandboxes/" + id + "/execs/" + trapper + "/signal", {{"signal", "TERM"}}, 200)["id"],
            trapper);
  const json ended = wait_exited(id, trapper);
  ASSERT_EQ(ended["state"], "exited") << ended.dump();
  EXPECT_EQ(ended["result"]["exit_code"], 3) << ended.dump();
  EXPECT_EQ(ended["result"]["stdout"], "waiting\ngot-term\n") << ended.dump();
  const json late = post("/v1/sandboxes/" + id + "/execs/" + trapper + "/signal", {{"signal", 15}}, 409);
  EXPECT_NE(late.dump().find("has exited"), std::string::npos) << late.dump();
  const json unknown =
      post("/v1/sandboxes/" + id + "/execs/" + trapper + "/signal", {{"signal", "NOPE"}}, 400);
  EXPECT_NE(unknown.dump().find("unknown signal 'NOPE'"), std::string::npos) << unknown.dump();
  EXPECT_EQ(daemon_->get("/v1/sandboxes/" + id + "/execs/ex-99").status, 404);

  // Followed: every line as it comes, then the result.
  const std::string talker =
      exec(id, {"sh", "-c", "echo one; sleep 1; echo two >&2; exit 4"}, {{"background", true}})["id"];
  auto followed =
      daemon_->request({"-H", "Accept: application/x-ndjson",
                        "http://airlockd/v1/sandboxes/" + id + "/execs/" + talker + "/logs?follow=1"});
  EXPECT_EQ(followed.status, 200);
  EXPECT_NE(followed.body.find(R"({"data":"one\n","encoding":"utf-8","type":"stdout"})"), std::string::npos)
      << followed.body;
  EXPECT_NE(followed.body.find(R"({"data":"two\n","encoding":"utf-8","type":"stderr"})"), std::string::npos)
      << followed.body;
  EXPECT_NE(followed.body.find(R"("exit_code":4)"), std::string::npos) << followed.body;

  // Stdin, sent while it runs.
  const std::string reader =
      exec(id, {"cat"}, {{"background", true}, {"stdin", "hello "}, {"stdin_open", true}})["id"];
  EXPECT_EQ(daemon_->post("/v1/sandboxes/" + id + "/execs/" + reader + "/stdin", "big ").status, 200);
  auto closed = daemon_->post("/v1/sandboxes/" + id + "/execs/" + reader + "/stdin?close=1", "world");
  EXPECT_EQ(closed.status, 200) << closed.body;
  const json read = wait_exited(id, reader);
  EXPECT_EQ(read["result"]["stdout"], "hello big world") << read.dump();
  EXPECT_EQ(daemon_->post("/v1/sandboxes/" + id + "/execs/" + reader + "/stdin", "more").status, 409);

  const json listed = json::parse(daemon_->get("/v1/sandboxes/" + id + "/execs").body);
  ASSERT_EQ(listed["execs"].size(), 3u) << listed.dump();
  EXPECT_EQ(listed["execs"][0]["argv"][0], "sh");
}

TEST_F(SandboxExecs, SixtyFourExecsRunAtOnceAndEachGetsItsOwnOutput) {
  ASSERT_TRUE(daemon_->start({"--pool-size", "0", "--max-connections", "100"}));
  const std::string id = create_shell();
  constexpr int kExecs = 64;
  std::vector<std::string> outputs(kExecs);
  std::vector<int> statuses(kExecs);
  std::vector<std::thread> threads;
  const auto started = std::chrono::steady_clock::now();
  for (int i = 0; i < kExecs; ++i) {
    threads.emplace_back([&, i] {
      // Each waits 3 s: one after another they would take over three minutes.
      json body = {{"argv", {"sh", "-c", "sleep 3; echo " + std::to_string(i)}}};
      auto reply = daemon_->post("/v1/sandboxes/" + id + "/execs", body.dump());
      statuses[i] = reply.status;
      outputs[i] = json::parse(reply.body, nullptr, false).value("stdout", "");
    });
  }
  for (auto& thread : threads) thread.join();
  for (int i = 0; i < kExecs; ++i) {
    EXPECT_EQ(statuses[i], 200) << i;
    EXPECT_EQ(outputs[i], std::to_string(i) + "\n") << i;
  }
  // Overlap, not speed: 64 serial execs of 3 s take 192 s.
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(150));
}

// What curl gets from a URL on the host: the body, then the status code.
std::string fetch(const std::string& url) {
  return run_command({"curl", "-s", "--max-time", "10", "-w", " %{http_code}", url}, {"PATH=/usr/bin:/bin"},
                     std::chrono::seconds(20))
      .output;
}

TEST_F(SandboxExecs, APortForwardReachesAServerInASandboxWithNoNetwork) {
  ASSERT_TRUE(daemon_->start({"--pool-size", "0"}));
  auto created = daemon_->post("/v1/sandboxes", R"({"language":"python","network":"none"})");
  ASSERT_EQ(created.status, 201) << created.body;
  const std::string id = json::parse(created.body)["id"];
  ASSERT_EQ(exec(id, {"sh", "-c", "echo hi from the guest > hello.txt"})["exit_code"], 0);
  exec(id, {"python3", "-m", "http.server", "8000", "--bind", "127.0.0.1"}, {{"background", true}});
  const json forward = post("/v1/sandboxes/" + id + "/ports", {{"port", 8000}}, 201);
  ASSERT_EQ(forward.value("host", ""), "127.0.0.1") << forward.dump();
  const std::string url = "http://127.0.0.1:" + std::to_string(forward["host_port"].get<int>());
  std::string got;
  for (int i = 0; i < 100 && got != "hi from the guest\n 200"; ++i) {
    got = fetch(url + "/hello.txt");
    if (got != "hi from the guest\n 200") std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  EXPECT_EQ(got, "hi from the guest\n 200");
  // Several at once, each its own connection.
  std::vector<std::string> answers(8);
  std::vector<std::thread> clients;
  for (int i = 0; i < 8; ++i) clients.emplace_back([&, i] { answers[i] = fetch(url + "/hello.txt"); });
  for (auto& client : clients) client.join();
  for (const auto& answer : answers) EXPECT_EQ(answer, "hi from the guest\n 200");

  const json twice = post("/v1/sandboxes/" + id + "/ports", {{"port", 8000}}, 409);
  EXPECT_NE(twice.dump().find("forwarded already"), std::string::npos) << twice.dump();
  const json nothing = post("/v1/sandboxes/" + id + "/ports", {{"port", 8001}}, 201);
  EXPECT_EQ(fetch("http://127.0.0.1:" + std::to_string(nothing["host_port"].get<int>()) + "/"), " 000")
      << "a connection to a port nothing listens on must just close";
  EXPECT_EQ(json::parse(daemon_->get("/v1/sandboxes/" + id + "/ports").body)["ports"].size(), 2u);
  auto close = [&](int port) {
    return daemon_->request(
        {"-X", "DELETE", "http://airlockd/v1/sandboxes/" + id + "/ports/" + std::to_string(port)});
  };
  EXPECT_EQ(close(8001).status, 200);
  EXPECT_EQ(close(8001).status, 404);
  post("/v1/sandboxes/" + id + "/ports", {{"port", 0}}, 400);

  CliOptions options;
  options.extra_env = {"AIRLOCK_SOCKET=" + daemon_->socket()};
  const auto cli = run_cli({"port", id, "9000"}, options);
  EXPECT_EQ(cli.exit_code, 0) << cli.err;
  EXPECT_EQ(cli.out.rfind("127.0.0.1:", 0), 0u) << cli.out;

  // The forwards close with the sandbox.
  EXPECT_EQ(daemon_->request({"-X", "DELETE", "http://airlockd/v1/sandboxes/" + id}).status, 200);
  EXPECT_EQ(fetch(url + "/hello.txt"), " 000");
}

TEST_F(SandboxExecs, ATtyExecHasATerminalThatResizesAndTheCliDrivesIt) {
  ASSERT_TRUE(daemon_->start({"--pool-size", "0"}));
  const std::string id = create_shell();
  const json shown = exec(id, {"sh", "-c", "tty; stty size"}, {{"tty", true}, {"rows", 30}, {"cols", 100}});
  const std::string out = shown.value("stdout", "");
  EXPECT_EQ(out.rfind("/dev/pts/", 0), 0u) << shown.dump();
  EXPECT_NE(out.find("\r\n30 100\r\n"), std::string::npos) << shown.dump();

  const std::string waiting = exec(id, {"sh", "-c", "read line; stty size"},
                                   {{"background", true}, {"tty", true}, {"stdin_open", true}})["id"];
  post("/v1/sandboxes/" + id + "/execs/" + waiting + "/resize", {{"rows", 50}, {"cols", 132}}, 200);
  EXPECT_EQ(daemon_->post("/v1/sandboxes/" + id + "/execs/" + waiting + "/stdin", "go\n").status, 200);
  const json resized = wait_exited(id, waiting);
  EXPECT_NE(resized["result"].value("stdout", "").find("50 132"), std::string::npos) << resized.dump();
  const std::string plain = exec(id, {"sleep", "30"}, {{"background", true}})["id"];
  post("/v1/sandboxes/" + id + "/execs/" + plain + "/resize", {{"rows", 50}, {"cols", 132}}, 409);
  post("/v1/sandboxes/" + id + "/execs/" + waiting + "/resize", {{"rows", 0}, {"cols", 132}}, 400);

  CliOptions options;
  options.extra_env = {"AIRLOCK_SOCKET=" + daemon_->socket()};
  const auto sized = run_cli({"exec", "-t", id, "--", "sh", "-c", "stty size; exit 3"}, options);
  EXPECT_EQ(sized.exit_code, 3) << sized.err;
  EXPECT_NE(sized.out.find("24 80"), std::string::npos) << sized.out;
  options.stdin_data = "echo typed-$((6*7))\nexit 4\n";
  const auto typed = run_cli({"exec", "-it", id, "--", "sh"}, options);
  EXPECT_EQ(typed.exit_code, 4) << typed.err;
  EXPECT_NE(typed.out.find("typed-42"), std::string::npos) << typed.out;
}

// A number of KiB from /proc/<pid>/status (VmRSS: resident now).
long resident_kib(pid_t pid) {
  const std::string status = read_file("/proc/" + std::to_string(pid) + "/status", 1 << 16);
  const size_t at = status.find("\nVmRSS:");
  return at == std::string::npos ? -1 : std::stol(status.substr(at + 7));
}

TEST_F(SandboxExecs, EndedExecsAreForgottenWithTheirOutput) {
  ASSERT_TRUE(daemon_->start({"--pool-size", "0"}));
  const std::string id = create_shell();
  auto megabyte = [&] { return exec(id, {"sh", "-c", "head -c 1000000 /dev/zero | tr '\\0' a"}); };
  for (int i = 0; i < 20; ++i) ASSERT_EQ(megabyte()["stdout"].get<std::string>().size(), 1000000u);
  const long before = resident_kib(daemon_->process().pid());
  // 60 MB more output: kept whole while each runs, then only the newest 16 ended execs are kept.
  for (int i = 0; i < 60; ++i) ASSERT_EQ(megabyte()["exit_code"], 0) << i;
  const long growth = resident_kib(daemon_->process().pid()) - before;
  EXPECT_LT(growth, 24 * 1024) << "airlockd kept the output of ended execs (" << growth << " KiB more)";
  const json listed = json::parse(daemon_->get("/v1/sandboxes/" + id + "/execs").body);
  EXPECT_EQ(listed["execs"].size(), 16u);
  EXPECT_EQ(listed["execs"][15]["id"], "ex-80");
}

TEST_F(SandboxExecs, TheCliStartsFollowsAndKillsABackgroundExec) {
  ASSERT_TRUE(daemon_->start({"--pool-size", "0"}));
  CliOptions options;
  options.extra_env = {"AIRLOCK_SOCKET=" + daemon_->socket()};
  const std::string id = create_shell();
  auto started = run_cli({"exec", "-d", id, "--", "sh", "-c", "echo up; sleep 600"}, options);
  ASSERT_EQ(started.exit_code, 0) << started.err;
  const std::string exec_id = started.out.substr(0, started.out.find('\n'));
  EXPECT_EQ(exec_id, "ex-1");
  std::string logs;
  for (int i = 0; i < 50 && logs != "up\n"; ++i) {
    logs = run_cli({"logs", id, exec_id}, options).out;
    if (logs != "up\n") std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(logs, "up\n");
  EXPECT_EQ(run_cli({"kill", id, exec_id, "--signal", "TERM"}, options).exit_code, 0);
  auto followed = run_cli({"logs", "-f", id, exec_id}, options);
  EXPECT_EQ(followed.exit_code, 0) << followed.err;
  EXPECT_EQ(followed.out, "up\n");
  EXPECT_EQ(wait_exited(id, exec_id)["result"]["signal"], 15);
  auto again = run_cli({"kill", id, exec_id}, options);
  EXPECT_EQ(again.exit_code, 125);
  EXPECT_NE(again.err.find("has exited"), std::string::npos) << again.err;
}

}  // namespace
}  // namespace airlock::testing
