// Attacks on what the engine keeps on the host, made the way a second local
// user or a racing caller would make them (they need another uid or a race,
// so they live here rather than in the hostile payload suite, whose payloads
// run inside VMs). Each fails on the code before its guard was added.

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <thread>

#include "common/io.h"
#include "engine/template_store.h"
#include "support/cli_fixture.h"
#include "support/test_daemon.h"
#include "vmm/jail/layer.h"

namespace airlock::testing {
namespace {

namespace fs = std::filesystem;

constexpr uid_t kOtherUser = 65534;  // nobody

// Runs `attempt` as another user in a child process; returns what it returned
// (a count of the things it managed that it should not have), or -1.
int as_other_user(const std::function<int()>& attempt) {
  pid_t child = ::fork();
  if (child == 0) {
    if (::setresgid(kOtherUser, kOtherUser, kOtherUser) < 0 ||
        ::setresuid(kOtherUser, kOtherUser, kOtherUser) < 0)
      ::_exit(100);
    ::_exit(attempt());
  }
  int status = 0;
  if (child < 0 || ::waitpid(child, &status, 0) != child || !WIFEXITED(status)) return -1;
  return WEXITSTATUS(status);
}

std::set<std::string> shm_entries() {
  std::set<std::string> names;
  for (const auto& entry : fs::directory_iterator("/dev/shm")) names.insert(entry.path().filename());
  return names;
}

struct stat lstat_of(const fs::path& path) {
  struct stat info {};
  EXPECT_EQ(::lstat(path.c_str(), &info), 0) << path;
  return info;
}

// A private template cache, so what these tests do to templates disturbs no other test.
class HostAttacks : public Cli {
 protected:
  void SetUp() override {
    Cli::SetUp();
    cache_ = runtime_dir_.parent_path() / ("airlock-it-cache-" + std::to_string(::getpid()) + "-attacks");
    fs::remove_all(cache_);
    options_.extra_env = {"AIRLOCK_CACHE_DIR=" + cache_.string()};
  }
  void TearDown() override {
    engine::TemplateStore(cache_.string() + "/templates", "/dev/shm", vmm::jail::jail_uid()).discard_all();
    fs::remove_all(cache_);
    Cli::TearDown();
  }
  json run_json(const std::string& code) {
    CliResult result = airlock({"run", "--json", "--lang", "shell", code}, options_);
    json parsed = json::parse(result.out, nullptr, false);
    EXPECT_FALSE(parsed.is_discarded()) << result.out << result.err;
    return parsed;
  }

  fs::path cache_;
  CliOptions options_;
};

TEST_F(HostAttacks, TemplateRamFilesCannotBeSquattedByAnotherUser) {
  // A root-owned file an attacker would like root to chown, or to overwrite with RAM.
  const fs::path victim = runtime_dir_.parent_path() / ("airlock-it-victim-" + std::to_string(::getpid()));
  write_file(victim.string(), "victim\n", 0600);

  const std::set<std::string> before = shm_entries();
  json built = run_json("echo one");
  EXPECT_EQ(built["stdout"], "one\n");
  EXPECT_EQ(built["from_snapshot"], true);
  // What this test's store made (other tests' stores may be at work too):
  // its directory, or files named after the store as RAM files once were.
  const std::string root = cache_.string() + "/templates";
  const std::string own_dir =
      fs::path(engine::TemplateStore(root, "/dev/shm", vmm::jail::jail_uid()).memory_dir()).filename();
  const std::string legacy_prefix =
      "airlock-" + std::to_string(::geteuid()) + "-" + engine::stable_hash(root).substr(0, 8) + "-";
  std::vector<std::string> made;
  for (const auto& name : shm_entries()) {
    if (!before.count(name) && (name == own_dir || name.rfind(legacy_prefix, 0) == 0)) made.push_back(name);
  }
  ASSERT_FALSE(made.empty()) << "the template left nothing in /dev/shm";

  // What clones map lies in a directory only this user may enter, as files
  // of the VMM uid with one link and mode 0600.
  for (const auto& name : made) {
    const fs::path dir = fs::path("/dev/shm") / name;
    const struct stat info = lstat_of(dir);
    ASSERT_TRUE(S_ISDIR(info.st_mode)) << dir << " is not a directory: RAM files lie in /dev/shm itself";
    EXPECT_EQ(info.st_uid, ::geteuid()) << dir;
    EXPECT_EQ(info.st_mode & 07777, 0700u) << dir;
    for (const auto& file : fs::directory_iterator(dir)) {
      const struct stat ram = lstat_of(file.path());
      EXPECT_TRUE(S_ISREG(ram.st_mode)) << file.path();
      EXPECT_EQ(ram.st_nlink, 1u) << file.path();
      EXPECT_EQ(ram.st_uid, vmm::jail::jail_uid()) << file.path();
      EXPECT_EQ(ram.st_mode & 07777, 0600u) << file.path();
      // Another user can neither open it nor add a name beside it.
      EXPECT_EQ(as_other_user([&] {
                  int managed = ::open(file.path().c_str(), O_RDONLY) >= 0;
                  managed += ::open((dir / "planted").c_str(), O_CREAT | O_WRONLY, 0666) >= 0;
                  managed += ::rename(file.path().c_str(), "/dev/shm/stolen") == 0;
                  return managed;
                }),
                0);
    }
  }

  // A reboot empties /dev/shm; another user then plants, at every name we
  // used, a symlink to the victim, and beside it a file of her own, which
  // older code took for its half-built template (".tmp") and kept writing.
  for (const auto& name : made) fs::remove_all(fs::path("/dev/shm") / name);
  ASSERT_EQ(as_other_user([&] {
              int failed = 0;
              for (const auto& name : made) {
                failed += ::symlink(victim.c_str(), ("/dev/shm/" + name).c_str()) != 0;
                int fd = ::open(("/dev/shm/" + name + ".tmp").c_str(), O_CREAT | O_EXCL | O_RDWR, 0666);
                failed += fd < 0;
              }
              return failed;
            }),
            0);
  json rebuilt = run_json("echo two");
  EXPECT_EQ(rebuilt["stdout"], "two\n");
  EXPECT_EQ(rebuilt["from_snapshot"], true) << rebuilt.dump();

  const struct stat victim_info = lstat_of(victim);
  EXPECT_EQ(victim_info.st_uid, 0u) << "root chowned the victim through a planted symlink";
  EXPECT_EQ(read_file(victim.string(), 1 << 20), "victim\n");
  for (const auto& name : made) {
    const fs::path planted = fs::path("/dev/shm") / name;
    EXPECT_TRUE(S_ISLNK(lstat_of(planted).st_mode)) << planted << " was replaced or followed";
    const struct stat tmp = lstat_of(planted.string() + ".tmp");
    EXPECT_EQ(tmp.st_uid, kOtherUser) << "the planted file was given to another uid";
    EXPECT_EQ(tmp.st_size, 0) << "the planted file was used as guest RAM";
    fs::remove(planted);
    fs::remove(planted.string() + ".tmp");
  }
  fs::remove(victim);
}

TEST_F(HostAttacks, TemplateRamFileWithASecondLinkIsNotUsed) {
  ASSERT_EQ(run_json("echo one")["from_snapshot"], true);
  // Whoever holds a second name for a template's RAM file can change what every clone starts from.
  const std::string dir =
      engine::TemplateStore(cache_.string() + "/templates", "/dev/shm", vmm::jail::jail_uid()).memory_dir();
  std::vector<fs::path> files;
  for (const auto& file : fs::directory_iterator(dir)) files.push_back(file.path());
  ASSERT_EQ(files.size(), 1u);
  // On the same tmpfs (a hard link cannot cross filesystems), outside the store's directory.
  const fs::path second_name = "/dev/shm/airlock-it-second-name-" + std::to_string(::getpid());
  ASSERT_EQ(::link(files[0].c_str(), second_name.c_str()), 0);
  json again = run_json("echo two");
  EXPECT_EQ(again["stdout"], "two\n");
  EXPECT_EQ(again["from_snapshot"], true) << again.dump();
  const struct stat linked = lstat_of(second_name);
  EXPECT_EQ(linked.st_nlink, 1u) << "the template with a second link was kept";
  for (const auto& file : fs::directory_iterator(dir)) {
    EXPECT_NE(lstat_of(file.path()).st_ino, linked.st_ino) << "a clone maps the file with a second link";
  }
  fs::remove(second_name);
}

// Every new profile used to leave its template's RAM in /dev/shm (host RAM)
// forever. Past the budget the least recently used go, never one a VM maps.
TEST_F(HostAttacks, TemplateRamStaysWithinItsBudget) {
  TestDaemon daemon(runtime_dir_);
  ASSERT_TRUE(daemon.start({"--pool-size", "0", "--template-ram-budget-mb", "100"}, options_.extra_env));
  // A pool keeps a clone of the first template mapped the whole time.
  ASSERT_EQ(daemon.post("/v1/pools", R"({"language":"shell","memory_mb":128,"target":1})").status, 201);
  ASSERT_TRUE(daemon.wait_for_ready("shell-128m"));
  for (int memory : {160, 192, 224, 288}) {
    engine::RunRequest request = run_request("shell", "echo ok");
    request.memory_mb = memory;
    auto reply = daemon.run(request);
    EXPECT_EQ(reply.status, 200) << reply.body;
  }
  const std::string metrics = daemon.get("/metrics").body;
  auto gauge = [&metrics](const std::string& name) {
    const size_t at = metrics.find("\n" + name + " ");
    return at == std::string::npos ? -1.0 : std::stod(metrics.substr(at + name.size() + 2));
  };
  std::printf("template RAM: %.0f bytes in %.0f templates, %.0f evicted\n",
              gauge("airlock_template_ram_bytes"), gauge("airlock_templates"),
              gauge("airlock_template_evictions_total"));
  EXPECT_GE(gauge("airlock_template_evictions_total"), 1) << metrics;
  // The newest template may exceed the budget alone together with the one in use; no other stays.
  const std::string dir =
      engine::TemplateStore(cache_.string() + "/templates", "/dev/shm", vmm::jail::jail_uid()).memory_dir();
  uint64_t total = 0;
  bool in_use_kept = false;
  for (const auto& file : fs::directory_iterator(dir)) {
    total += static_cast<uint64_t>(lstat_of(file.path()).st_blocks) * 512;
    in_use_kept = in_use_kept || file.path().filename().string().rfind("shell-128m-", 0) == 0;
  }
  EXPECT_TRUE(in_use_kept) << "the template a pooled VM maps was evicted";
  EXPECT_LE(total, uint64_t{100} << 20) << "the RAM files exceed the budget";
  EXPECT_EQ(gauge("airlock_template_ram_bytes"), static_cast<double>(total));
  // The pool's clone still runs from its template.
  auto pooled =
      json::parse(daemon.post("/v1/run", R"({"language":"shell","memory_mb":128,"code":"echo hit"})").body);
  EXPECT_EQ(pooled["pool_hit"], true) << pooled.dump();
  EXPECT_EQ(pooled["stdout"], "hit\n");
  auto status = daemon.stop();
  EXPECT_TRUE(status && status->exit_code == 0);
}

// A caller with write access inside a mount root swaps the directory it asked
// to share for a symlink to "/" as fast as it can, while runs and a pool
// start VMs that share it: every VM shares the directory, or its start is
// refused; none ever sees the host's root.
TEST(MountRace, ASwappedDirectoryIsNeverFollowedOutOfItsRoot) {
  const fs::path dir = fs::temp_directory_path() / ("airlock-mr-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  const fs::path root = dir / "root";
  fs::create_directories(root / "share");
  fs::permissions(dir, fs::perms(0755));
  fs::permissions(root, fs::perms(0755));
  fs::permissions(root / "share", fs::perms(0755));
  write_file((root / "share" / "marker").string(), "inside the share\n", 0644);
  fs::create_directory_symlink("/", root / "evil");
  {
    TestDaemon daemon(dir);
    ASSERT_TRUE(daemon.start({"--pool-size", "0", "--mount-root", root.string()}));
    engine::RunRequest request = run_request("shell", "ls /data; cat /data/etc/hostname 2>/dev/null");
    request.mounts = {engine::parse_mount("ro:" + (root / "share").string() + ":/data")};
    // The template (and the check) see the real directory first.
    auto first = daemon.run(request);
    ASSERT_EQ(first.status, 200) << first.body;
    ASSERT_NE(first.body.find("marker"), std::string::npos) << first.body;

    std::atomic<bool> stop{false};
    std::thread swapper([&] {
      while (!stop) {
        ::renameat2(AT_FDCWD, (root / "share").c_str(), AT_FDCWD, (root / "evil").c_str(), RENAME_EXCHANGE);
        ::usleep(200);
      }
    });
    const nlohmann::json pool = {
        {"language", "shell"}, {"mounts", {request.mounts[0].to_string()}}, {"target", 2}};
    auto created = daemon.post("/v1/pools", pool.dump());
    int shared = 0, refused = 0;
    for (int i = 0; i < 12; ++i) {
      auto reply = daemon.run(request);
      // The host's root would list (JSON-escaped) "bin\n" and "etc\n".
      EXPECT_EQ(reply.body.find("bin\\n"), std::string::npos) << "the host's root was shared: " << reply.body;
      EXPECT_EQ(reply.body.find("etc\\n"), std::string::npos) << "the host's root was shared: " << reply.body;
      if (reply.status == 200 && reply.body.find("marker") != std::string::npos) {
        ++shared;
      } else {
        ++refused;
        EXPECT_EQ(reply.status, 400) << reply.body;
        EXPECT_TRUE(reply.body.find("changed after it was checked") != std::string::npos ||
                    reply.body.find("host's root directory") != std::string::npos ||
                    reply.body.find("no longer inside a mount root") != std::string::npos)
            << reply.body;
      }
    }
    stop = true;
    swapper.join();
    std::printf("mount race: %d runs shared the directory, %d were refused (pool: %d)\n", shared, refused,
                created.status);
    auto status = daemon.stop();
    EXPECT_TRUE(status && status->exit_code == 0);
  }
  EXPECT_TRUE(qemu_processes(dir.string() + "/").empty());
  fs::remove_all(dir);
}

}  // namespace
}  // namespace airlock::testing
