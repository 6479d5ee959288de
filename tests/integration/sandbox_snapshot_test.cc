// Pause, snapshots of live sandboxes, restore and fork (docs/snapshots.md),
// through a real airlockd whose snapshots live in the test's own directory.

#include <gtest/gtest.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "engine/sandbox_json.h"
#include "support/airlock_cli.h"
#include "support/daemon_fixture.h"
#include "support/test_daemon.h"

namespace airlock::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

class SandboxSnapshots : public DaemonFixture {
 protected:
  bool start_daemon(std::vector<std::string> extra = {}) {
    std::vector<std::string> flags = {"--pool-size", "0", "--snapshot-dir", (dir_ / "snapshots").string()};
    flags.insert(flags.end(), extra.begin(), extra.end());
    return daemon_->start(flags);
  }
  json call(const std::string& method, const std::string& path, const std::string& body, int expected) {
    auto reply = daemon_->request({"-X", method, "-H", "Content-Type: application/json", "--data-binary",
                                   body, "http://airlockd" + path});
    EXPECT_EQ(reply.status, expected) << method << " " << path << ": " << reply.body;
    return json::parse(reply.body, nullptr, false);
  }
  json create(json spec) { return call("POST", "/v1/sandboxes", spec.dump(), 201); }
  // The exec's stdout (it must exit 0).
  std::string sh(const std::string& id, const std::string& script) {
    engine::ExecRequest request;
    request.argv = {"sh", "-c", script};
    const json result = call("POST", "/v1/sandboxes/" + id + "/execs", engine::to_json(request).dump(), 200);
    EXPECT_EQ(result.value("exit_code", -1), 0) << script << ": " << result.dump();
    return result.value("stdout", "");
  }
  json exec_status(const std::string& id, const std::string& script) {
    engine::ExecRequest request;
    request.argv = {"sh", "-c", script};
    auto reply = daemon_->post("/v1/sandboxes/" + id + "/execs", engine::to_json(request).dump());
    return {{"status", reply.status}, {"body", reply.body}};
  }
  void background(const std::string& id, const std::vector<std::string>& argv) {
    engine::ExecRequest request;
    request.argv = argv;
    request.background = true;
    request.timeout_s = 0;
    call("POST", "/v1/sandboxes/" + id + "/execs", engine::to_json(request).dump(), 202);
  }
  void destroy(const std::string& id) { call("DELETE", "/v1/sandboxes/" + id, "", 200); }
};

// A Python process that holds a secret only in its memory and tells it to
// whoever leaves /home/sandbox/ask (it answers in /home/sandbox/answer).
const char* kKeeper = R"(
import os, time
secret = os.urandom(8).hex()
with open("/home/sandbox/pid", "w") as f:
    f.write(str(os.getpid()))
while True:
    if os.path.exists("/home/sandbox/ask"):
        with open("/home/sandbox/answer.tmp", "w") as f:
            f.write(secret)
        os.rename("/home/sandbox/answer.tmp", "/home/sandbox/answer")
        os.remove("/home/sandbox/ask")
    time.sleep(0.02)
)";

// Asks the background program for its answer and waits for it: ~20 s at
// most (each round forks a sleep), for nine VMs busy under TCG on 2 cores.
const char* kAsk =
    "rm -f /home/sandbox/answer; touch /home/sandbox/ask; "
    "for i in $(seq 500); do [ -f /home/sandbox/answer ] && break; sleep 0.02; done; cat "
    "/home/sandbox/answer";

TEST_F(SandboxSnapshots, APausedSandboxKeepsItsMemoryAndAnswersOnlyWhatItMay) {
  ASSERT_TRUE(start_daemon());
  const std::string id = create({{"language", "python"}, {"ttl_s", 600}, {"idle_timeout_s", 3}})["id"];
  background(id, {"python3", "-c", kKeeper});
  sh(id, "for i in $(seq 250); do [ -f /home/sandbox/pid ] && break; sleep 0.02; done");
  const std::string secret = sh(id, kAsk);
  ASSERT_EQ(secret.size(), 16u);

  const json paused = call("POST", "/v1/sandboxes/" + id + "/pause", "", 200);
  EXPECT_EQ(paused["state"], "paused") << paused.dump();
  EXPECT_EQ(call("POST", "/v1/sandboxes/" + id + "/pause", "", 200)["state"], "paused") << "idempotent";
  const json refused = exec_status(id, "true");
  EXPECT_EQ(refused["status"], 409);
  EXPECT_NE(refused["body"].get<std::string>().find("is paused"), std::string::npos) << refused.dump();
  EXPECT_EQ(daemon_->get("/v1/sandboxes/" + id + "/files?path=/home/sandbox/pid").status, 409);
  call("POST", "/v1/sandboxes/" + id + "/snapshots", "{}", 409);
  EXPECT_EQ(call("POST", "/v1/sandboxes/" + id + "/touch", "", 200)["state"], "paused");
  // Longer than its idle timeout: paused time is not idle time.
  std::this_thread::sleep_for(std::chrono::seconds(4));
  EXPECT_EQ(call("GET", "/v1/sandboxes/" + id, "", 200)["state"], "paused");

  // Busy: its background exec runs on.
  EXPECT_EQ(call("POST", "/v1/sandboxes/" + id + "/resume", "", 200)["state"], "busy");
  EXPECT_EQ(sh(id, kAsk), secret) << "the process and its memory are as they were";
  // Its clock was set on resume: it stood still while paused.
  const int64_t guest = std::stoll(sh(id, "date +%s"));
  const int64_t host =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
          .count();
  EXPECT_LE(std::llabs(guest - host), 2) << "guest clock " << guest << ", host " << host;
}

TEST_F(SandboxSnapshots, ARestoreBringsBackFilesProcessesAndTheirMemory) {
  ASSERT_TRUE(start_daemon());
  const std::string id = create({{"language", "python"}, {"ttl_s", 600}})["id"];
  sh(id, "mkdir -p /home/sandbox/work && echo precious > /home/sandbox/work/data.txt");
  background(id, {"python3", "-c", kKeeper});
  sh(id, "for i in $(seq 250); do [ -f /home/sandbox/pid ] && break; sleep 0.02; done");
  const std::string secret = sh(id, kAsk);
  const std::string pid = sh(id, "cat /home/sandbox/pid");

  // An exec that runs through the snapshot still completes.
  auto during = std::async(std::launch::async, [&] { return sh(id, "sleep 1; echo finished"); });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  const json snapshot =
      call("POST", "/v1/sandboxes/" + id + "/snapshots", R"({"name":"cleaned","labels":{"task":"42"}})", 201);
  EXPECT_EQ(during.get(), "finished\n");
  EXPECT_EQ(snapshot["name"], "cleaned");
  EXPECT_EQ(snapshot["labels"]["task"], "42");
  EXPECT_EQ(snapshot["source_sandbox"], id);
  EXPECT_TRUE(snapshot["parent"].is_null());
  EXPECT_EQ(snapshot["depth"], 1);
  EXPECT_GT(snapshot["paused_ms"].get<int>(), 0);
  EXPECT_LE(snapshot["paused_ms"].get<int>(), snapshot["total_ms"].get<int>());
  EXPECT_GT(snapshot["size_bytes"].get<uint64_t>(), 1u << 20);
  // Its RAM is a file the copies map (the state holds only the devices).
  std::map<std::string, uint64_t> sizes;
  for (const auto& file : snapshot["files"]) sizes[file["name"]] = file["bytes"];
  ASSERT_TRUE(sizes.count("memory")) << snapshot.dump();
  EXPECT_LT(sizes["state"], 1u << 20) << snapshot.dump();
  const json listed = call("GET", "/v1/snapshots", "", 200);
  ASSERT_EQ(listed["snapshots"].size(), 1u);
  EXPECT_EQ(listed["snapshots"][0]["id"], snapshot["id"]);
  call("POST", "/v1/sandboxes/" + id + "/snapshots", R"({"name":"cleaned"})", 409);

  // Then something destructive in the source.
  sh(id, "rm -rf /home/sandbox/*; kill " + pid);
  EXPECT_EQ(sh(id, "ls /home/sandbox | wc -l"), "0\n");

  const json copy = call("POST", "/v1/snapshots/cleaned/restore", "{}", 201);
  const std::string copy_id = copy["id"];
  EXPECT_NE(copy_id, id);
  EXPECT_EQ(copy["origin_snapshot"], snapshot["id"]);
  EXPECT_EQ(sh(copy_id, "cat /home/sandbox/work/data.txt"), "precious\n");
  EXPECT_EQ(sh(copy_id, "kill -0 " + pid + " && echo alive"), "alive\n");
  EXPECT_EQ(sh(copy_id, kAsk), secret) << "the process came back with its memory";
  EXPECT_NE(sh(copy_id, "uname -n"), sh(id, "uname -n"));
  EXPECT_EQ(sh(id, "ls /home/sandbox | wc -l"), "0\n") << "the source is not touched by its copy";

  // A snapshot of the copy stacks on its parent's disk.
  const json child = call("POST", "/v1/sandboxes/" + copy_id + "/snapshots", "{}", 201);
  EXPECT_EQ(child["parent"], snapshot["id"]);
  EXPECT_EQ(child["depth"], 2);
  EXPECT_EQ(child["name"], child["id"]);

  const json in_use = call("DELETE", "/v1/snapshots/cleaned", "", 409);
  EXPECT_NE(in_use.dump().find("in use"), std::string::npos) << in_use.dump();
  destroy(copy_id);
  call("DELETE", "/v1/snapshots/cleaned", "", 200);
  call("GET", "/v1/snapshots/cleaned", "", 404);
  // The child holds its own links to the layers it shares: it restores still.
  const std::string grandchild =
      call("POST", "/v1/snapshots/" + child["id"].get<std::string>() + "/restore", "{}", 201)["id"];
  EXPECT_EQ(sh(grandchild, "cat /home/sandbox/work/data.txt"), "precious\n");
  destroy(grandchild);
}

TEST_F(SandboxSnapshots, SnapshotsOutliveTheDaemonAndADamagedOneIsRefused) {
  ASSERT_TRUE(start_daemon());
  const std::string id = create({{"language", "shell"}})["id"];
  sh(id, "echo kept > /home/sandbox/f");
  const json snapshot = call("POST", "/v1/sandboxes/" + id + "/snapshots", R"({"name":"keep"})", 201);
  ASSERT_TRUE(daemon_->stop());
  ASSERT_TRUE(start_daemon());
  const json listed = call("GET", "/v1/snapshots", "", 200);
  ASSERT_EQ(listed["snapshots"].size(), 1u) << listed.dump();
  EXPECT_EQ(listed["snapshots"][0]["digest"], snapshot["digest"]);
  const std::string copy = call("POST", "/v1/snapshots/keep/restore", "{}", 201)["id"];
  EXPECT_EQ(sh(copy, "cat /home/sandbox/f"), "kept\n");
  destroy(copy);

  EXPECT_EQ(call("POST", "/v1/snapshots/keep/verify", "", 200)["digest"], snapshot["digest"]);

  // Altered with its mtime put back, so that a restore's cached digest
  // would not notice: a verify digests it again.
  const fs::path state = dir_ / "snapshots" / snapshot["id"].get<std::string>() / "state";
  const auto mtime = fs::last_write_time(state);
  {
    std::fstream file(state, std::ios::in | std::ios::out | std::ios::binary);
    file.seekp(static_cast<std::streamoff>(fs::file_size(state) / 2));
    const char was = static_cast<char>(file.peek());
    file.put(static_cast<char>(was ^ 0x5a));
  }
  fs::last_write_time(state, mtime);
  const json verified = call("POST", "/v1/snapshots/keep/verify", "", 409);
  EXPECT_NE(verified.dump().find("snapshot keep is corrupt: state does not match its digest"),
            std::string::npos)
      << verified.dump();
  call("POST", "/v1/snapshots/nothing/verify", "", 404);
  const json corrupt = call("POST", "/v1/snapshots/keep/restore", "{}", 409);
  EXPECT_NE(corrupt.dump().find("snapshot keep is corrupt: state does not match its digest"),
            std::string::npos)
      << corrupt.dump();
  fs::resize_file(state, fs::file_size(state) / 2);
  const json truncated = call("POST", "/v1/snapshots/keep/restore", "{}", 409);
  EXPECT_NE(truncated.dump().find("snapshot keep is corrupt: state has"), std::string::npos)
      << truncated.dump();
  for (const auto& sandbox : call("GET", "/v1/sandboxes", "", 200)["sandboxes"]) {
    EXPECT_EQ(sandbox["state"], "stopped") << "no sandbox was half-made: " << sandbox.dump();
  }
}

TEST_F(SandboxSnapshots, ForkedCopiesAreIndependentAndEachHasItsOwnIdentity) {
  ASSERT_TRUE(start_daemon());
  const std::string id = create({{"language", "python"}})["id"];
  sh(id, "echo shared > /home/sandbox/before");
  const json forked = call("POST", "/v1/sandboxes/" + id + "/fork", R"({"count":3})", 200);
  ASSERT_EQ(forked["copies"].size(), 3u) << forked.dump();
  std::set<std::string> hostnames, machine_ids, boot_ids, random;
  std::vector<std::string> copies;
  for (const auto& copy : forked["copies"]) {
    ASSERT_TRUE(copy.contains("sandbox")) << copy.dump();
    const std::string copy_id = copy["sandbox"]["id"];
    copies.push_back(copy_id);
    EXPECT_EQ(sh(copy_id, "cat /home/sandbox/before"), "shared\n");
    sh(copy_id, "echo " + copy_id + " > /home/sandbox/mine");
    hostnames.insert(sh(copy_id, "uname -n"));
    machine_ids.insert(sh(copy_id, "cat /etc/machine-id"));
    boot_ids.insert(sh(copy_id, "cat /proc/sys/kernel/random/boot_id"));
    random.insert(sh(copy_id, "head -c 16 /dev/urandom | od -An -tx1"));
  }
  for (const auto& copy_id : copies) EXPECT_EQ(sh(copy_id, "cat /home/sandbox/mine"), copy_id + "\n");
  EXPECT_EQ(hostnames.size(), 3u);
  EXPECT_EQ(machine_ids.size(), 3u);
  EXPECT_EQ(boot_ids.size(), 3u);
  EXPECT_EQ(random.size(), 3u);
  EXPECT_EQ(sh(id, "ls /home/sandbox/mine 2>/dev/null | wc -l"), "0\n");
  EXPECT_TRUE(call("GET", "/v1/snapshots", "", 200)["snapshots"].empty())
      << "a fork's snapshot is not listed";
  for (const auto& copy_id : copies) destroy(copy_id);
  // Its snapshot goes with its last copy.
  for (const auto& entry : fs::directory_iterator(dir_ / "snapshots"))
    ADD_FAILURE() << entry.path() << " is left";
}

// Interpreters that hold generator state, asked to draw once forked: every
// copy answers for itself (the image's hooks reseed on the agent's SIGURG).
const char* kPythonDrawer = R"(
import os, random, time
random.random()
while True:
    if os.path.exists("/home/sandbox/ask"):
        with open("/home/sandbox/answer.tmp", "w") as f:
            f.write(repr(random.random()))
        os.rename("/home/sandbox/answer.tmp", "/home/sandbox/answer")
        os.remove("/home/sandbox/ask")
    time.sleep(0.02)
)";
const char* kNodeDrawer = R"(
const fs = require('fs');
const crypto = require('crypto');
Math.random();
crypto.randomBytes(8);
setInterval(() => {
  if (!fs.existsSync('/home/sandbox/ask')) return;
  const drawn = [Math.random(), crypto.randomBytes(8).toString('hex'), crypto.randomUUID(),
                 crypto.randomInt(1000000000)].join(' ');
  fs.writeFileSync('/home/sandbox/answer.tmp', drawn);
  fs.renameSync('/home/sandbox/answer.tmp', '/home/sandbox/answer');
  fs.unlinkSync('/home/sandbox/ask');
}, 20);
)";

TEST_F(SandboxSnapshots, EightForksOfRunningInterpretersAllDrawDifferentValues) {
  // Nine VMs at once: more vCPUs than this host's default budget (four per core).
  ASSERT_TRUE(start_daemon({"--vm-cpu-budget", "16"}));
  for (const auto& [language, argv] : std::vector<std::pair<std::string, std::vector<std::string>>>{
           {"python", {"python3", "-c", kPythonDrawer}}, {"javascript", {"node", "-e", kNodeDrawer}}}) {
    SCOPED_TRACE(language);
    const std::string id = create({{"language", language}})["id"];
    background(id, argv);
    const std::string first = sh(id, kAsk);
    ASSERT_FALSE(first.empty());
    const json forked = call("POST", "/v1/sandboxes/" + id + "/fork", R"({"count":8})", 200);
    std::set<std::string> drawn = {first};
    for (const auto& copy : forked["copies"]) {
      ASSERT_TRUE(copy.contains("sandbox")) << copy.dump();
      const std::string answer = sh(copy["sandbox"]["id"], kAsk);
      EXPECT_FALSE(answer.empty());
      for (const auto& seen : drawn) {
        // Each value drawn differs, not only the whole line.
        std::istringstream a(answer), b(seen);
        for (std::string x, y; a >> x && b >> y;) EXPECT_NE(x, y) << answer << " vs " << seen;
      }
      drawn.insert(answer);
      destroy(copy["sandbox"]["id"]);
    }
    EXPECT_EQ(drawn.size(), 9u);
    destroy(id);
  }
}

TEST_F(SandboxSnapshots, AForkPastTheVmBudgetAnswersForEachCopy) {
  ASSERT_TRUE(start_daemon({"--vm-cpu-budget", "4"}));
  const std::string id = create({{"language", "shell"}})["id"];
  const json forked = call("POST", "/v1/sandboxes/" + id + "/fork", R"({"count":64})", 200);
  ASSERT_EQ(forked["copies"].size(), 64u);
  int made = 0;
  for (const auto& copy : forked["copies"]) {
    if (copy.contains("sandbox")) {
      ++made;
      EXPECT_EQ(sh(copy["sandbox"]["id"], "echo up"), "up\n");
      destroy(copy["sandbox"]["id"]);
    } else {
      EXPECT_EQ(copy["error"]["code"], "overloaded") << copy.dump();
      EXPECT_TRUE(copy["error"]["retryable"].get<bool>());
    }
  }
  EXPECT_EQ(made, 3) << "the source and three copies fill a budget of four vCPUs";
  destroy(id);
  EXPECT_TRUE(fs::is_empty(dir_ / "snapshots")) << "the fork's snapshot went with its last copy";
}

TEST_F(SandboxSnapshots, AForkRacingTheDeleteOfItsSourceAnswersCleanly) {
  ASSERT_TRUE(start_daemon());
  for (int delay_ms : {0, 150}) {
    const std::string id = create({{"language", "shell"}})["id"];
    auto forked = std::async(
        std::launch::async, [&] { return daemon_->post("/v1/sandboxes/" + id + "/fork", R"({"count":2})"); });
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
    EXPECT_EQ(daemon_->request({"-X", "DELETE", "http://airlockd/v1/sandboxes/" + id}).status, 200);
    const HttpReply reply = forked.get();
    const json answer = json::parse(reply.body, nullptr, false);
    if (reply.status == 200) {
      // The snapshot was taken first: the copies go on without their source.
      for (const auto& copy : answer["copies"]) {
        ASSERT_TRUE(copy.contains("sandbox")) << answer.dump();
        EXPECT_EQ(sh(copy["sandbox"]["id"], "echo alive"), "alive\n");
        destroy(copy["sandbox"]["id"]);
      }
    } else {
      EXPECT_TRUE(reply.status == 404 || reply.status == 409) << reply.status << " " << reply.body;
    }
  }
  EXPECT_TRUE(fs::is_empty(dir_ / "snapshots")) << "no fork's snapshot is left";
  for (int i = 0; i < 50 && !qemu_processes(dir_.string() + "/").empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(qemu_processes(dir_.string() + "/").empty());
}

TEST_F(SandboxSnapshots, BadRequestsAreRefusedNamingWhatIsWrong) {
  ASSERT_TRUE(start_daemon());
  const std::string id = create({{"language", "shell"}})["id"];
  EXPECT_NE(call("POST", "/v1/sandboxes/" + id + "/snapshots", R"({"name":"a b"})", 400)
                .dump()
                .find("snapshot name"),
            std::string::npos);
  EXPECT_NE(
      call("POST", "/v1/sandboxes/" + id + "/snapshots", R"({"name":"snap-1"})", 400).dump().find("are ids"),
      std::string::npos);
  EXPECT_NE(
      call("POST", "/v1/sandboxes/" + id + "/snapshots", R"({"nme":"x"})", 400).dump().find("unknown field"),
      std::string::npos);
  EXPECT_NE(call("POST", "/v1/sandboxes/" + id + "/fork", R"({"count":65})", 400)
                .dump()
                .find("out of range (1-64)"),
            std::string::npos);
  call("POST", "/v1/sandboxes/" + id + "/fork", R"({"count":0})", 400);
  call("POST", "/v1/sandboxes/sb-00000000000000000000000000000000/snapshots", "{}", 404);
  call("POST", "/v1/snapshots/nothing/restore", "{}", 404);
  call("DELETE", "/v1/snapshots/nothing", "", 404);
  EXPECT_TRUE(fs::is_empty(dir_ / "snapshots")) << "a refused snapshot leaves nothing";
}

TEST_F(SandboxSnapshots, AStoreTooFullForASnapshotRefusesItAndKeepsNothing) {
  const fs::path store = dir_ / "snapshots";
  fs::create_directories(store);
  // 64 MiB: less than the guest's RAM alone.
  ASSERT_EQ(::mount("tmpfs", store.c_str(), "tmpfs", 0, "size=64m"), 0) << std::strerror(errno);
  struct Unmount {
    fs::path path;
    ~Unmount() { ::umount2(path.c_str(), MNT_DETACH); }
  } unmount{store};
  ASSERT_TRUE(start_daemon());
  const std::string id = create({{"language", "shell"}})["id"];
  const json full = call("POST", "/v1/sandboxes/" + id + "/snapshots", R"({"name":"big"})", 507);
  EXPECT_NE(full.dump().find("MiB free; this snapshot needs up to"), std::string::npos) << full.dump();
  EXPECT_TRUE(fs::is_empty(store)) << "nothing half-written is left";
  EXPECT_EQ(sh(id, "echo still running"), "still running\n");
  destroy(id);
}

TEST_F(SandboxSnapshots, TheCliVerbs) {
  ASSERT_TRUE(start_daemon());
  CliOptions options;
  options.extra_env = {"AIRLOCK_SOCKET=" + daemon_->socket()};
  auto created = run_cli({"create", "--lang", "shell"}, options);
  ASSERT_EQ(created.exit_code, 0) << created.err;
  const std::string id = created.out.substr(0, created.out.find('\n'));
  EXPECT_EQ(run_cli({"exec", id, "--", "sh", "-c", "echo v1 > /home/sandbox/v"}, options).exit_code, 0);
  auto taken = run_cli({"snapshot", id, "--name", "v1", "--label", "task=42"}, options);
  ASSERT_EQ(taken.exit_code, 0) << taken.err;
  EXPECT_EQ(taken.out.rfind("snap-", 0), 0u) << taken.out;
  auto listed = run_cli({"snapshots"}, options);
  EXPECT_NE(listed.out.find("v1 "), std::string::npos) << listed.out;
  EXPECT_EQ(json::parse(run_cli({"snapshots", "--json"}, options).out)["snapshots"][0]["labels"]["task"],
            "42");
  EXPECT_EQ(run_cli({"pause", id}, options).exit_code, 0);
  auto refused = run_cli({"exec", id, "--", "true"}, options);
  EXPECT_EQ(refused.exit_code, 125);
  EXPECT_NE(refused.err.find("is paused"), std::string::npos) << refused.err;
  EXPECT_EQ(run_cli({"resume", id}, options).exit_code, 0);
  auto restored = run_cli({"restore", "v1"}, options);
  ASSERT_EQ(restored.exit_code, 0) << restored.err;
  const std::string copy = restored.out.substr(0, restored.out.find('\n'));
  EXPECT_EQ(run_cli({"exec", copy, "--", "cat", "/home/sandbox/v"}, options).out, "v1\n");
  auto forked = run_cli({"fork", id, "-n", "2"}, options);
  ASSERT_EQ(forked.exit_code, 0) << forked.err;
  EXPECT_EQ(std::count(forked.out.begin(), forked.out.end(), '\n'), 2) << forked.out;
  EXPECT_EQ(run_cli({"rm-snapshot", "v1"}, options).exit_code, 125) << "in use by the restored copy";
  EXPECT_EQ(run_cli({"rm", copy}, options).exit_code, 0);
  EXPECT_EQ(run_cli({"rm-snapshot", "v1"}, options).exit_code, 0);
}

}  // namespace
}  // namespace airlock::testing
