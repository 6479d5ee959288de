// Sandboxes that live (docs/api.yaml, /v1/sandboxes): through a real airlockd
// and through the CLI's verbs. Every test ends with no QEMU of its daemon left.

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "common/child_process.h"
#include "common/io.h"
#include "engine/sandbox_json.h"
#include "support/airlock_cli.h"
#include "support/daemon_fixture.h"
#include "support/test_daemon.h"

namespace airlock::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

class Sandboxes : public DaemonFixture {
 protected:
  json create(json spec, int expected_status = 201) {
    auto reply = daemon_->post("/v1/sandboxes", spec.dump());
    EXPECT_EQ(reply.status, expected_status) << reply.body;
    return json::parse(reply.body, nullptr, false);
  }
  json exec(const std::string& id, const engine::ExecRequest& request, int expected_status = 200) {
    auto reply = daemon_->post("/v1/sandboxes/" + id + "/execs", engine::to_json(request).dump());
    EXPECT_EQ(reply.status, expected_status) << reply.body;
    return json::parse(reply.body, nullptr, false);
  }
  json get(const std::string& id) {
    return json::parse(daemon_->get("/v1/sandboxes/" + id).body, nullptr, false);
  }

  static engine::ExecRequest command(std::vector<std::string> argv) {
    engine::ExecRequest request;
    request.argv = std::move(argv);
    return request;
  }
};

TEST_F(Sandboxes, ManyExecsShareOneSandboxsFilesUntilItIsDestroyed) {
  ASSERT_TRUE(daemon_->start({"--pool-size", "0"}));
  ASSERT_EQ(
      daemon_->request({"-X", "PUT", "-d", R"({"target":1})", "http://airlockd/v1/pools/python-256m"}).status,
      200);
  ASSERT_TRUE(daemon_->wait_for_ready("python-256m"));
  const json sandbox = create({{"language", "python"}, {"ttl_s", 600}, {"idle_timeout_s", 300}});
  const std::string id = sandbox["id"];
  EXPECT_TRUE(sandbox["pool_hit"].get<bool>()) << sandbox.dump();
  EXPECT_EQ(sandbox["state"], "ready");
  EXPECT_EQ(id.size(), 35u);  // "sb-" and 128 bits in hex

  EXPECT_EQ(exec(id, command({"sh", "-c", "echo 1 > /home/sandbox/x"}))["exit_code"], 0);
  const json read = exec(id, command({"cat", "/home/sandbox/x"}));
  EXPECT_EQ(read["stdout"], "1\n") << read.dump();

  engine::ExecRequest shaped = command({"sh", "-c", "pwd; echo $GREETING; cat; exit 3"});
  shaped.cwd = "/tmp";
  shaped.env = {{"GREETING", "hello"}};
  shaped.stdin_data = "from stdin\n";
  const json result = exec(id, shaped);
  EXPECT_EQ(result["stdout"], "/tmp\nhello\nfrom stdin\n") << result.dump();
  EXPECT_EQ(result["exit_code"], 3);
  EXPECT_EQ(exec(id, command({"no-such-program"}))["exit_code"], 127);
  EXPECT_EQ(exec(id, command({"/etc/passwd"}))["exit_code"], 126);
  const json timed = exec(id, [] {
    engine::ExecRequest slow = command({"sleep", "30"});
    slow.timeout_s = 1;
    return slow;
  }());
  EXPECT_EQ(timed["status"], "timeout") << timed.dump();
  // A timed-out exec ends its own processes, not the sandbox.
  EXPECT_EQ(exec(id, command({"cat", "/home/sandbox/x"}))["stdout"], "1\n");
  EXPECT_EQ(get(id)["execs"], 7);

  const json listed = json::parse(daemon_->get("/v1/sandboxes").body);
  ASSERT_EQ(listed["sandboxes"].size(), 1u);
  EXPECT_EQ(listed["sandboxes"][0]["id"], id);

  auto gone = daemon_->request({"-X", "DELETE", "http://airlockd/v1/sandboxes/" + id});
  EXPECT_EQ(gone.status, 200) << gone.body;
  EXPECT_EQ(json::parse(gone.body)["state"], "stopped");
  EXPECT_EQ(daemon_->get("/v1/sandboxes/" + id).status, 404);
  exec(id, command({"true"}), 404);
  // Its VM is gone; the pool's refill is what remains.
  for (int i = 0; i < 50 && qemu_processes(dir_.string() + "/").size() > 1; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(qemu_processes(dir_.string() + "/").size(), 1u);
}

TEST_F(Sandboxes, BadRequestsAreRefusedNamingTheField) {
  ASSERT_TRUE(daemon_->start({"--pool-size", "0"}));
  const json unknown = create({{"language", "python"}, {"code", "x"}}, 400);
  EXPECT_NE(unknown.dump().find("unknown field 'code'"), std::string::npos) << unknown.dump();
  const json ttl = create({{"language", "python"}, {"ttl_s", 0}}, 400);
  EXPECT_NE(ttl.dump().find("ttl_s 0 is out of range"), std::string::npos) << ttl.dump();
  const json idle = create({{"language", "shell"}, {"ttl_s", 10}, {"idle_timeout_s", 20}}, 400);
  EXPECT_NE(idle.dump().find("idle_timeout_s 20 is out of range"), std::string::npos) << idle.dump();
  EXPECT_EQ(daemon_->get("/v1/sandboxes/sb-00000000000000000000000000000000").status, 404);

  const std::string id = create({{"language", "shell"}})["id"];
  const json empty = exec(id, command({}), 400);
  EXPECT_NE(empty.dump().find("argv is empty"), std::string::npos) << empty.dump();
  engine::ExecRequest relative = command({"true"});
  relative.cwd = "tmp";
  EXPECT_NE(exec(id, relative, 400).dump().find("cwd must be an absolute path"), std::string::npos);
}

TEST_F(Sandboxes, TheTtlEndsARunningExecAndTheSandboxSaysWhy) {
  ASSERT_TRUE(daemon_->start({"--pool-size", "0"}));
  const std::string id = create({{"language", "shell"}, {"ttl_s", 3}, {"idle_timeout_s", 3}})["id"];
  engine::ExecRequest slow = command({"sleep", "60"});
  slow.timeout_s = 120;
  const json result = exec(id, slow);
  EXPECT_EQ(result["status"], "killed") << result.dump();
  const json after = get(id);
  EXPECT_EQ(after["state"], "stopped") << after.dump();
  EXPECT_EQ(after["stop_reason"], "its ttl of 3 s passed");
  const json refused = exec(id, command({"true"}), 409);
  EXPECT_NE(refused.dump().find("is stopped: its ttl of 3 s passed"), std::string::npos) << refused.dump();
}

TEST_F(Sandboxes, ReadingDoesNotExtendTheIdleTimeoutButTouchDoes) {
  ASSERT_TRUE(daemon_->start({"--pool-size", "0"}));
  const std::string touched = create({{"language", "shell"}, {"ttl_s", 60}, {"idle_timeout_s", 3}})["id"];
  const std::string read = create({{"language", "shell"}, {"ttl_s", 60}, {"idle_timeout_s", 3}})["id"];
  for (int i = 0; i < 10; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    EXPECT_EQ(daemon_->post("/v1/sandboxes/" + touched + "/touch", "").status, 200);
    get(read);
  }
  EXPECT_EQ(get(touched)["state"], "ready");
  const json idle = get(read);
  EXPECT_EQ(idle["state"], "stopped") << idle.dump();
  EXPECT_EQ(idle["stop_reason"], "idle for 3 s (its idle timeout)");
  EXPECT_EQ(daemon_->post("/v1/sandboxes/" + read + "/touch", "").status, 409);
}

TEST_F(Sandboxes, LiveSandboxesAreCappedAndTheNextGets429) {
  ASSERT_TRUE(daemon_->start({"--pool-size", "0", "--max-sandboxes", "1"}));
  const std::string first = create({{"language", "shell"}})["id"];
  const std::string metrics = daemon_->get("/metrics").body;
  EXPECT_NE(metrics.find("\nairlock_sandboxes 1\n"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("\nairlock_sandboxes_max 1\n"), std::string::npos) << metrics;
  const json refused = create({{"language", "shell"}}, 429);
  EXPECT_TRUE(refused["error"]["retryable"].get<bool>()) << refused.dump();
  EXPECT_EQ(daemon_->request({"-X", "DELETE", "http://airlockd/v1/sandboxes/" + first}).status, 200);
  create({{"language", "shell"}});
}

TEST_F(Sandboxes, ASandboxHoldsItsDiskBudgetForItsLife) {
  // 100 MiB of disk budget: one sandbox of 64 MiB (+32 MiB of overlay) fits, a second does not.
  ASSERT_TRUE(daemon_->start({"--pool-size", "0", "--disk-budget-mb", "100"}));
  const std::string first = create({{"language", "shell"}, {"disk_mb", 64}})["id"];
  const json refused = create({{"language", "shell"}, {"disk_mb", 64}}, 429);
  EXPECT_NE(refused.dump().find("disk budget"), std::string::npos) << refused.dump();
  EXPECT_EQ(daemon_->request({"-X", "DELETE", "http://airlockd/v1/sandboxes/" + first}).status, 200);
  create({{"language", "shell"}, {"disk_mb", 64}});
}

TEST_F(Sandboxes, AThousandExecsInOneSandboxAllAnswer) {
  ASSERT_TRUE(daemon_->start({"--pool-size", "0"}));
  const std::string id = create({{"language", "shell"}})["id"];
  for (int i = 0; i < 1000; ++i) {
    const json result = exec(id, command({"echo", std::to_string(i)}));
    ASSERT_EQ(result["stdout"], std::to_string(i) + "\n") << i << ": " << result.dump();
  }
  EXPECT_EQ(get(id)["execs"], 1000);
}

TEST_F(Sandboxes, ASigkilledDaemonLeavesNoSandboxBehind) {
  ASSERT_TRUE(daemon_->start({"--pool-size", "0"}));
  // Created on a connection's thread that has long ended when airlockd dies:
  // the VM must still be tied to airlockd's life, not that thread's.
  const std::string id = create({{"language", "shell"}})["id"];
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(exec(id, command({"true"}))["exit_code"], 0);
  ASSERT_EQ(qemu_processes(dir_.string() + "/").size(), 1u)
      << "the sandbox's VM outlived its creating thread";
  daemon_->process().kill(SIGKILL);
  daemon_->process().wait();
  for (int i = 0; i < 50 && !qemu_processes(dir_.string() + "/").empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(qemu_processes(dir_.string() + "/").empty()) << "a sandbox outlived a SIGKILLed daemon";
  ASSERT_TRUE(daemon_->start({"--pool-size", "0"}));
  EXPECT_EQ(daemon_->get("/v1/sandboxes/" + id).status, 404) << "sandboxes do not survive a restart";
  for (const auto& entry : fs::directory_iterator(dir_)) {
    EXPECT_NE(entry.path().filename().string().rfind("run-", 0), 0u) << entry.path() << " was not reaped";
  }
}

TEST_F(Sandboxes, TheCliVerbsSpeakTheApiAndExitLikeDocker) {
  ASSERT_TRUE(daemon_->start({"--pool-size", "0"}));
  CliOptions options;
  options.extra_env = {"AIRLOCK_SOCKET=" + daemon_->socket()};
  auto created = run_cli({"create", "--lang", "shell", "--ttl", "600", "--idle-timeout", "60"}, options);
  ASSERT_EQ(created.exit_code, 0) << created.err;
  const std::string id = created.out.substr(0, created.out.find('\n'));
  EXPECT_EQ(run_cli({"exec", id, "--", "sh", "-c", "echo kept > /home/sandbox/f"}, options).exit_code, 0);
  auto read = run_cli({"exec", id, "--", "cat", "/home/sandbox/f"}, options);
  EXPECT_EQ(read.out, "kept\n");
  EXPECT_EQ(run_cli({"exec", id, "--", "sh", "-c", "exit 7"}, options).exit_code, 7);
  EXPECT_EQ(run_cli({"exec", id, "--", "no-such-program"}, options).exit_code, 127);
  EXPECT_EQ(run_cli({"exec", id, "--", "/etc/passwd"}, options).exit_code, 126);
  auto as_json = run_cli({"exec", "--json", id, "--", "echo", "j"}, options);
  EXPECT_EQ(json::parse(as_json.out)["stdout"], "j\n") << as_json.out;
  auto listed = run_cli({"ps"}, options);
  EXPECT_NE(listed.out.find(id + " shell"), std::string::npos) << listed.out;
  EXPECT_EQ(json::parse(run_cli({"ps", "--json"}, options).out)["sandboxes"][0]["id"], id);
  EXPECT_EQ(run_cli({"touch", id}, options).exit_code, 0);
  EXPECT_EQ(run_cli({"rm", id}, options).exit_code, 0);
  auto missing = run_cli({"exec", id, "--", "true"}, options);
  EXPECT_EQ(missing.exit_code, 125);
  EXPECT_NE(missing.err.find("no sandbox " + id), std::string::npos) << missing.err;
  options.extra_env = {"AIRLOCK_SOCKET=" + (dir_ / "nobody.sock").string()};
  auto no_daemon = run_cli({"ps"}, options);
  EXPECT_EQ(no_daemon.exit_code, 125);
  EXPECT_NE(no_daemon.err.find("start one with"), std::string::npos) << no_daemon.err;
}

TEST_F(Sandboxes, FilesGoInAndOutByteExactAsTheSandboxUserAndNeverOutOfItsReach) {
  ASSERT_TRUE(daemon_->start({"--pool-size", "0"}));
  const std::string id = create({{"language", "shell"}})["id"];
  const std::string files = "http://airlockd/v1/sandboxes/" + id + "/files?path=";
  auto put = [&](const std::string& path, const fs::path& local, const std::string& mode = "") {
    return daemon_->request({"-X", "PUT", "--data-binary", "@" + local.string(),
                             files + path + (mode.empty() ? "" : "&mode=" + mode)});
  };
  auto download = [&](const std::string& path) { return daemon_->request({files + path}); };
  // Every byte value, and more than one chunk of the channel.
  std::string content;
  for (int i = 0; i < 300 * 1024; ++i) content.push_back(static_cast<char>((i * 7919) & 0xff));
  const fs::path local = dir_ / "upload.bin";
  write_file(local, content);
  auto uploaded = put("/home/sandbox/new/dir/data.bin", local, "640");
  ASSERT_EQ(uploaded.status, 200) << uploaded.body;
  EXPECT_EQ(json::parse(uploaded.body)["bytes"], content.size());
  const json seen = exec(id, command({"stat", "-c", "%a %u %s", "/home/sandbox/new/dir/data.bin"}));
  EXPECT_EQ(seen["stdout"], "640 1000 " + std::to_string(content.size()) + "\n") << seen.dump();
  auto back = download("/home/sandbox/new/dir/data.bin");
  ASSERT_EQ(back.status, 200);
  EXPECT_TRUE(back.body == content) << "the download differs from the upload";
  const fs::path empty = dir_ / "empty";
  write_file(empty, "");
  EXPECT_EQ(put("/home/sandbox/empty", empty).status, 200);
  EXPECT_EQ(download("/home/sandbox/empty").body, "");

  // What an earlier exec planted cannot redirect a transfer.
  exec(id, command({"sh", "-c",
                    "ln -s /etc /home/sandbox/etc-link; ln -s /etc/passwd /home/sandbox/passwd-link; "
                    "mkfifo /home/sandbox/fifo"}));
  // A hard link to root's file is refused by the guest's kernel (protected_hardlinks).
  EXPECT_NE(exec(id, command({"ln", "/etc/passwd", "/home/sandbox/hard"}))["exit_code"], 0);
  const std::string passwd_before = exec(id, command({"md5sum", "/etc/passwd"}))["stdout"];
  auto expect_refused = [&](const HttpReply& reply, int status, const std::string& fragment) {
    EXPECT_EQ(reply.status, status) << reply.body;
    EXPECT_NE(reply.body.find(fragment), std::string::npos) << reply.body;
  };
  expect_refused(put("/home/sandbox/etc-link/evil", local), 404, "/home/sandbox/etc-link/evil");
  expect_refused(put("/home/sandbox/passwd-link", local), 409, "symbolic links");
  expect_refused(download("/home/sandbox/passwd-link"), 409, "symbolic links");
  expect_refused(download("/home/sandbox/fifo"), 409, "/home/sandbox/fifo");
  expect_refused(put("/home/sandbox/fifo", local), 409, "/home/sandbox/fifo");
  expect_refused(put("/etc/passwd", local), 403, "Permission denied");
  expect_refused(put("/etc/evil", local), 403, "Permission denied");
  expect_refused(download("/home/sandbox"), 409, "Is a directory");
  expect_refused(download("/home/sandbox/missing"), 404, "No such file");
  expect_refused(download("/home/sandbox/../../etc/passwd"), 400, "'..'");
  expect_refused(download("home/sandbox/x"), 400, "");
  expect_refused(daemon_->request({files + "/home//sandbox/x"}), 400, "normal form");
  expect_refused(put("/home/sandbox/x", local, "4755"), 400, "no setuid");
  expect_refused(daemon_->request({"http://airlockd/v1/sandboxes/" + id + "/files"}), 400, "'path'");
  EXPECT_EQ(exec(id, command({"md5sum", "/etc/passwd"}))["stdout"], passwd_before);
  EXPECT_FALSE(exec(id, command({"test", "-e", "/etc/evil"}))["exit_code"] == 0);
  // A full disk is 507, not a partial file called done.
  exec(id, command({"sh", "-c", "dd if=/dev/zero of=/home/sandbox/fill bs=1M count=400 2>/dev/null; true"}));
  expect_refused(put("/home/sandbox/more", local), 507, "No space");
}

TEST_F(Sandboxes, DirectoriesAreListedAndFilesRemovedAsTheSandboxUser) {
  ASSERT_TRUE(daemon_->start({"--pool-size", "0"}));
  const std::string id = create({{"language", "shell"}})["id"];
  ASSERT_EQ(
      exec(id, command({"sh", "-c",
                        "mkdir -p d/sub && printf hi > d/a && ln -s /etc/passwd d/link && mkfifo d/fifo && "
                        "chmod 600 d/a && ln -s /etc etc-link"}))["exit_code"],
      0);
  auto list = [&](const std::string& path) {
    return daemon_->get("/v1/sandboxes/" + id + "/list?path=" + path);
  };
  const auto listed = list("/home/sandbox/d");
  ASSERT_EQ(listed.status, 200) << listed.body;
  const json entries = json::parse(listed.body)["entries"];
  ASSERT_EQ(entries.size(), 4u) << listed.body;
  EXPECT_EQ(entries[0]["name"], "a");
  EXPECT_EQ(entries[0]["type"], "file");
  EXPECT_EQ(entries[0]["size"], 2);
  EXPECT_EQ(entries[0]["mode"], 0600);
  EXPECT_EQ(entries[1]["type"], "fifo");
  EXPECT_EQ(entries[2]["name"], "link");
  EXPECT_EQ(entries[2]["type"], "symlink") << "an entry is described as it is, never its target";
  EXPECT_EQ(entries[3]["type"], "directory");
  EXPECT_NE(list("/home/sandbox/etc-link").status, 200) << "a listing followed a planted symlink";
  EXPECT_EQ(list("/root").status, 403);
  EXPECT_EQ(list("/home/sandbox/missing").status, 404);
  EXPECT_EQ(list("/home/sandbox/../etc").status, 400);

  auto remove = [&](const std::string& path) {
    return daemon_->request({"-X", "DELETE", "http://airlockd/v1/sandboxes/" + id + "/files?path=" + path});
  };
  EXPECT_EQ(remove("/home/sandbox/d/link").status, 200);
  EXPECT_EQ(exec(id, command({"test", "-f", "/etc/passwd"}))["exit_code"], 0)
      << "removing a symlink removed its target";
  const auto not_empty = remove("/home/sandbox/d");
  EXPECT_EQ(not_empty.status, 409) << not_empty.body;
  EXPECT_EQ(remove("/etc/passwd").status, 403);
  EXPECT_EQ(remove("/home/sandbox/d/missing").status, 404);
  EXPECT_EQ(remove("/home/sandbox/d/a").status, 200);
  EXPECT_EQ(remove("/home/sandbox/d/fifo").status, 200);
  EXPECT_EQ(remove("/home/sandbox/d/sub").status, 200);
  EXPECT_EQ(remove("/home/sandbox/d").status, 200);
  EXPECT_EQ(list("/home/sandbox/d").status, 404);

  CliOptions options;
  options.extra_env = {"AIRLOCK_SOCKET=" + daemon_->socket()};
  ASSERT_EQ(exec(id, command({"sh", "-c", "printf 12345 > f"}))["exit_code"], 0);
  const auto ls = run_cli({"ls", id, "/home/sandbox"}, options);
  EXPECT_EQ(ls.exit_code, 0) << ls.err;
  EXPECT_NE(ls.out.find("-rw-r--r-- 5 "), std::string::npos) << ls.out;
  EXPECT_NE(ls.out.find(" etc-link -> /etc\n"), std::string::npos) << ls.out;
}

// A number of KiB from /proc/<pid>/status ("VmHWM": the peak resident set).
long status_kib(pid_t pid, const std::string& field) {
  const std::string status = read_file("/proc/" + std::to_string(pid) + "/status", 1 << 16);
  const size_t at = status.find("\n" + field + ":");
  return at == std::string::npos ? -1 : std::stol(status.substr(at + field.size() + 2));
}

TEST_F(Sandboxes, A128MiBFileStreamsBothWaysWithFlatMemory) {
  ASSERT_TRUE(daemon_->start({"--pool-size", "0"}));
  const std::string id = create({{"language", "shell"}, {"disk_mb", 512}})["id"];
  // Pseudo-random bytes the guest's disk cannot compress or dedupe.
  std::string content(128 << 20, '\0');
  uint64_t state = 88172645463325252ULL;
  for (size_t i = 0; i < content.size(); i += 8) {
    state ^= state << 13, state ^= state >> 7, state ^= state << 17;
    std::memcpy(&content[i], &state, 8);
  }
  const fs::path local = dir_ / "big.bin";
  write_file(local, content);
  const std::string md5 =
      run_command({"md5sum", local.string()}, {"PATH=/usr/bin:/bin"}, std::chrono::seconds(60))
          .output.substr(0, 32);
  const long peak_before = status_kib(daemon_->process().pid(), "VmHWM");
  const std::string files = "http://airlockd/v1/sandboxes/" + id + "/files?path=";
  // curl -T streams the file with a Content-Length.
  auto uploaded = daemon_->request({"-T", local.string(), files + "/home/sandbox/big.bin"});
  ASSERT_EQ(uploaded.status, 200) << uploaded.body;
  EXPECT_EQ(json::parse(uploaded.body)["bytes"], content.size());
  EXPECT_EQ(exec(id, command({"md5sum", "/home/sandbox/big.bin"}))["stdout"].get<std::string>().substr(0, 32),
            md5);
  auto downloaded = daemon_->request({files + "/home/sandbox/big.bin"});
  EXPECT_EQ(downloaded.status, 200);
  EXPECT_TRUE(downloaded.body == content) << "the download differs from the upload";
  downloaded.body.clear();
  const long growth_kib = status_kib(daemon_->process().pid(), "VmHWM") - peak_before;
  EXPECT_LT(growth_kib, 32 * 1024) << "airlockd held the file in memory (its peak grew " << growth_kib
                                   << " KiB)";

  // The CLI streams both ways too, and a download that fails leaves no file.
  CliOptions options;
  options.extra_env = {"AIRLOCK_SOCKET=" + daemon_->socket()};
  const CliResult sent = run_cli({"cp", local.string(), id + ":/home/sandbox/again.bin"}, options);
  EXPECT_EQ(sent.exit_code, 0) << sent.err;
  const fs::path cli_back = dir_ / "cli-back.bin";
  const CliResult fetched = run_cli({"cp", id + ":/home/sandbox/again.bin", cli_back.string()}, options);
  EXPECT_EQ(fetched.exit_code, 0) << fetched.err;
  EXPECT_EQ(run_command({"md5sum", cli_back.string()}, {"PATH=/usr/bin:/bin"}, std::chrono::seconds(60))
                .output.substr(0, 32),
            md5);
  EXPECT_EQ(run_cli({"cp", id + ":/home/sandbox/none.bin", (dir_ / "none.bin").string()}, options).exit_code,
            125);
  EXPECT_FALSE(fs::exists(dir_ / "none.bin"));
  EXPECT_FALSE(fs::exists(dir_ / "none.bin.airlock-partial"));

  // A streamed body needs its length up front.
  auto chunked = daemon_->request({"-X", "PUT", "-H", "Transfer-Encoding: chunked", "--data-binary", "abc",
                                   files + "/home/sandbox/chunked"});
  EXPECT_EQ(chunked.status, 411) << chunked.body;
}

// A guest that stops taking data (its QEMU stopped) fails the upload after
// the stall bound, with a clear error; the daemon answers meanwhile; once
// the guest goes on, nothing of the upload is left and the sandbox works.
TEST_F(Sandboxes, AGuestThatStopsReadingFailsTheUploadAndNothingElse) {
  ASSERT_TRUE(daemon_->start({"--pool-size", "0"}));
  const std::string id = create({{"language", "shell"}})["id"];
  const fs::path local = dir_ / "big.bin";
  write_file(local, std::string(64 << 20, 'x'));
  const std::set<pid_t> qemus = qemu_processes(dir_.string() + "/");
  ASSERT_EQ(qemus.size(), 1u);
  const pid_t qemu = *qemus.begin();
  ASSERT_EQ(::kill(qemu, SIGSTOP), 0);
  HttpReply uploaded;
  std::thread upload([&] {
    uploaded = daemon_->request(
        {"-T", local.string(), "http://airlockd/v1/sandboxes/" + id + "/files?path=/home/sandbox/big.bin"});
  });
  std::this_thread::sleep_for(std::chrono::seconds(2));
  EXPECT_EQ(daemon_->get("/v1/health").status, 200) << "a stalled upload held up the daemon";
  EXPECT_EQ(get(id)["state"], "busy");
  upload.join();
  ::kill(qemu, SIGCONT);
  EXPECT_EQ(uploaded.status, 500) << uploaded.body;
  EXPECT_NE(uploaded.body.find("stopped taking data"), std::string::npos) << uploaded.body;
  const json listing = exec(id, command({"sh", "-c", "ls -A /home/sandbox; echo alive"}));
  EXPECT_EQ(listing["stdout"], "alive\n") << "a partial upload was left behind: " << listing.dump();
  EXPECT_EQ(get(id)["state"], "ready");
}

// A request over a connection of our own: a millisecond, where curl takes tens.
HttpReply quick_request(const std::string& socket_path, boost::beast::http::verb verb,
                        const std::string& target) {
  namespace asio = boost::asio;
  namespace http = boost::beast::http;
  asio::io_context context;
  asio::local::stream_protocol::socket socket(context);
  socket.connect(asio::local::stream_protocol::endpoint(socket_path));
  http::request<http::string_body> request{verb, target, 11};
  request.set(http::field::host, "airlockd");
  request.prepare_payload();
  http::write(socket, request);
  boost::beast::flat_buffer buffer;
  http::response<http::string_body> response;
  http::read(socket, buffer, response);
  return {static_cast<int>(response.result_int()), response.body()};
}

// While its VM is found and restored, a sandbox is listed as creating; it
// can be read, not used, until it is ready.
TEST_F(Sandboxes, ASandboxIsListedAsCreatingUntilItIsReady) {
  ASSERT_TRUE(daemon_->start({"--pool-size", "0"}));
  json created;
  std::atomic<bool> done = false;
  std::thread create_it([&] {
    created = create({{"language", "shell"}});
    done = true;
  });
  using boost::beast::http::verb;
  json seen;
  HttpReply read_early, used_early;
  while (!done && seen.is_null()) {
    const json listed = json::parse(quick_request(daemon_->socket(), verb::get, "/v1/sandboxes").body);
    for (const auto& sandbox : listed["sandboxes"]) {
      if (sandbox["state"] == "creating") seen = sandbox;
    }
  }
  if (!seen.is_null()) {
    const std::string path = "/v1/sandboxes/" + seen["id"].get<std::string>();
    read_early = quick_request(daemon_->socket(), verb::get, path);
    used_early = quick_request(daemon_->socket(), verb::post, path + "/touch");
  }
  create_it.join();
  ASSERT_FALSE(seen.is_null()) << "never listed as creating";
  const std::string id = seen["id"];
  EXPECT_EQ(read_early.status, 200) << read_early.body;
  // Unless its create ended in between: then it is ready, and a touch works.
  if (json::parse(read_early.body)["state"] == "creating" && used_early.status != 200) {
    EXPECT_EQ(used_early.status, 409) << used_early.body;
    EXPECT_NE(used_early.body.find("is creating"), std::string::npos) << used_early.body;
  }
  EXPECT_EQ(created["id"], id) << created.dump();
  EXPECT_EQ(created["state"], "ready");
  EXPECT_EQ(get(id)["state"], "ready");
  EXPECT_EQ(exec(id, command({"true"}))["exit_code"], 0);
}

TEST_F(Sandboxes, TheCliCopiesFilesBothWays) {
  ASSERT_TRUE(daemon_->start({"--pool-size", "0"}));
  CliOptions options;
  options.extra_env = {"AIRLOCK_SOCKET=" + daemon_->socket()};
  const std::string id = json::parse(run_cli({"create", "--json", "--lang", "shell"}, options).out)["id"];
  write_file(dir_ / "script.sh", "#!/bin/sh\necho from the host\n");
  fs::permissions(dir_ / "script.sh", fs::perms::owner_all);
  EXPECT_EQ(
      run_cli({"cp", (dir_ / "script.sh").string(), id + ":/home/sandbox/script.sh"}, options).exit_code, 0);
  EXPECT_EQ(run_cli({"exec", id, "--", "/home/sandbox/script.sh"}, options).out, "from the host\n");
  run_cli({"exec", id, "--", "sh", "-c", "echo result > /home/sandbox/out.txt"}, options);
  EXPECT_EQ(run_cli({"cp", id + ":/home/sandbox/out.txt", (dir_ / "out.txt").string()}, options).exit_code,
            0);
  EXPECT_EQ(read_file(dir_ / "out.txt", 1024), "result\n");
  auto missing = run_cli({"cp", id + ":/home/sandbox/nothing", (dir_ / "x").string()}, options);
  EXPECT_EQ(missing.exit_code, 125);
  EXPECT_NE(missing.err.find("No such file"), std::string::npos) << missing.err;
}

}  // namespace
}  // namespace airlock::testing
