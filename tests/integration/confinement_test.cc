// The QEMU of a real run, inspected from the host while the guest sleeps:
// each confinement layer (src/vmm/jail) is checked on the live process, and
// everything the jail made is checked gone after the run.

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <map>

#include "common/error.h"
#include "common/io.h"
#include "engine/engine.h"
#include "support/airlock_cli.h"
#include "vmm/jail/layer.h"
#include "vmm/qemu_backend.h"

namespace airlock::testing {
namespace {

namespace fs = std::filesystem;

// What the host saw of the live QEMU.
struct Observed {
  bool inspected = false;
  size_t qemu_count = 0;
  std::string status, limits, environ, cmdline;
  std::map<std::string, bool> same_namespace;  // "mnt" -> same as ours?
  std::vector<std::string> fds;
  std::vector<std::string> cgroup_dirs;             // the VM's cgroup directories on the host
  std::map<std::string, std::string> cgroup_files;  // control file -> value
  bool root_is_own_filesystem = false;
  std::vector<std::string> root_entries;
};

std::string field(const std::string& status, const std::string& name) {
  size_t at = status.find("\n" + name + ":");
  if (at == std::string::npos) return "";
  at += name.size() + 2;
  while (at < status.size() && (status[at] == '\t' || status[at] == ' ')) ++at;
  return status.substr(at, status.find('\n', at) - at);
}

std::string trim(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

// The VM's own cgroup directories on the host, from "id:controllers:path" lines.
std::vector<std::string> cgroup_dirs(pid_t pid) {
  std::vector<std::string> dirs;
  std::string table = read_file("/proc/" + std::to_string(pid) + "/cgroup", 64 * 1024);
  for (size_t start = 0; start < table.size();) {
    size_t end = table.find('\n', start);
    std::string line = table.substr(start, end - start);
    start = end == std::string::npos ? table.size() : end + 1;
    const size_t first = line.find(':'), second = line.find(':', first + 1);
    const std::string controllers = line.substr(first + 1, second - first - 1);
    const std::string path = line.substr(second + 1);
    if (path.find("/airlock/") == std::string::npos) continue;
    dirs.push_back("/sys/fs/cgroup/" + (controllers.empty() ? std::string() : controllers + "/") + path);
  }
  return dirs;
}

void inspect(pid_t pid, Observed& seen) {
  const std::string proc = "/proc/" + std::to_string(pid);
  seen.status = "\n" + read_file(proc + "/status", 64 * 1024);
  seen.limits = read_file(proc + "/limits", 64 * 1024);
  seen.environ = read_file(proc + "/environ", 64 * 1024);
  seen.cmdline = read_file(proc + "/cmdline", 1 << 20);
  for (const char* ns : {"mnt", "pid", "ipc", "uts", "net"}) {
    seen.same_namespace[ns] =
        fs::read_symlink(proc + "/ns/" + ns) == fs::read_symlink(std::string("/proc/self/ns/") + ns);
  }
  for (const auto& entry : fs::directory_iterator(proc + "/fd")) {
    std::error_code ec;
    seen.fds.push_back(entry.path().filename().string() + " -> " +
                       fs::read_symlink(entry.path(), ec).string());
  }
  seen.cgroup_dirs = cgroup_dirs(pid);
  for (const auto& dir : seen.cgroup_dirs) {
    for (const char* file :
         {"memory.limit_in_bytes", "memory.max", "pids.max", "cpu.cfs_quota_us", "cpu.max"}) {
      if (fs::exists(dir + "/" + file)) seen.cgroup_files[file] = trim(read_file(dir + "/" + file, 4096));
    }
  }
  struct stat jail_root {
  }, host_root{};
  ::stat((proc + "/root/").c_str(), &jail_root);
  ::stat("/", &host_root);
  seen.root_is_own_filesystem = jail_root.st_dev != host_root.st_dev;
  for (const auto& entry : fs::directory_iterator(proc + "/root/")) {
    seen.root_entries.push_back(entry.path().filename().string());
  }
  seen.inspected = true;
}

std::string limit_line(const std::string& limits, const std::string& name) {
  size_t at = limits.find(name);
  if (at == std::string::npos) return "";
  std::string line = limits.substr(at + name.size(), limits.find('\n', at) - at - name.size());
  // "  <soft>  <hard>  <units>" -> "<soft> <hard>"
  std::istringstream words(line);
  std::string soft, hard;
  words >> soft >> hard;
  return soft + " " + hard;
}

class Confinement : public ::testing::Test {
 protected:
  void SetUp() override {
    runtime_dir_ =
        fs::temp_directory_path() /
        ("airlock-jail-" + std::to_string(::getpid()) + "-" +
         std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()).substr(0, 24));
    fs::remove_all(runtime_dir_);
    fs::create_directories(runtime_dir_);
  }
  void TearDown() override {
    std::set<pid_t> leaked = qemu_processes(runtime_dir_.string() + "/");
    EXPECT_TRUE(leaked.empty()) << leaked.size() << " qemu process(es) left running";
    for (pid_t pid : leaked) ::kill(pid, SIGKILL);
    EXPECT_TRUE(fs::is_empty(runtime_dir_)) << "run directory (and its jail) left behind";
    fs::remove_all(runtime_dir_);
  }
  fs::path runtime_dir_;
};

TEST_F(Confinement, LiveQemuIsJailedAndNothingOutlivesTheRun) {
  Observed seen;
  CliOptions options;
  options.extra_env.push_back("AIRLOCK_RUNTIME_DIR=" + runtime_dir_.string());
  options.on_stdout = [&](const std::string& so_far, pid_t cli) {
    if (seen.inspected || so_far.find("ready") == std::string::npos) return;
    std::set<pid_t> qemu = qemu_processes(runtime_dir_.string() + "/");
    seen.qemu_count = qemu.size();
    try {
      if (qemu.size() == 1) inspect(*qemu.begin(), seen);
    } catch (const std::exception& e) {
      ADD_FAILURE() << "inspecting QEMU: " << e.what();
    }
    seen.inspected = true;
    ::kill(cli, SIGINT);  // done: the run ends as if by Ctrl-C
  };
  CliResult result =
      run_cli({"run", "--no-daemon", "--accel", "tcg", "--lang", "shell", "echo ready; sleep 60"}, options);
  EXPECT_EQ(result.exit_code, 130) << result.err;
  ASSERT_TRUE(seen.inspected) << "the program never started: " << result.err;
  ASSERT_EQ(seen.qemu_count, 1u);

  // credentials: the dedicated uid and gid, neither root nor us.
  const std::string uid = std::to_string(vmm::jail::jail_uid());
  const std::string gid = std::to_string(vmm::jail::jail_gid());
  EXPECT_EQ(field(seen.status, "Uid"), uid + "\t" + uid + "\t" + uid + "\t" + uid);
  EXPECT_EQ(field(seen.status, "Gid"), gid + "\t" + gid + "\t" + gid + "\t" + gid);
  EXPECT_NE(vmm::jail::jail_uid(), 0u);
  EXPECT_NE(vmm::jail::jail_uid(), ::getuid());
  EXPECT_EQ(field(seen.status, "Groups"), "");  // under TCG; KVM would add /dev/kvm's group
  EXPECT_EQ(field(seen.status, "CapEff"), "0000000000000000");
  EXPECT_EQ(field(seen.status, "CapPrm"), "0000000000000000");

  // namespaces: none shared with the host.
  for (const auto& [ns, same] : seen.same_namespace) EXPECT_FALSE(same) << ns << " namespace is the host's";

  // seccomp: our filter and QEMU's sandbox, under no_new_privs.
  EXPECT_EQ(field(seen.status, "NoNewPrivs"), "1");
  EXPECT_EQ(field(seen.status, "Seccomp"), "2");
  EXPECT_GE(std::stoi(field(seen.status, "Seccomp_filters")), 2) << "ours and QEMU's";
  EXPECT_NE(seen.cmdline.find(std::string("-sandbox\0on,", 12)), std::string::npos);

  // No inherited environment, and only the fds QEMU was given or opened itself.
  EXPECT_EQ(seen.environ, "");
  EXPECT_FALSE(seen.fds.empty());
  for (const auto& fd : seen.fds) {
    const std::string target = fd.substr(fd.find(" -> ") + 4);
    const bool expected = target.rfind("socket:", 0) == 0 || target.rfind("anon_inode:", 0) == 0 ||
                          target.rfind("pipe:", 0) == 0 ||
                          // stdin: /dev/null, opened before the pivot, so named from its own mount.
                          target == "/dev/null" || target == "/null" ||
                          target.find("rootfs-overlay.qcow2") != std::string::npos ||
                          target.find("/.cache/airlock/") != std::string::npos ||
                          target.find("/images/") != std::string::npos ||
                          target.find("/dev/shm/airlock-") != std::string::npos;
    EXPECT_TRUE(expected) << "unexpected fd " << fd;
  }

  // rlimits.
  EXPECT_EQ(limit_line(seen.limits, "Max open files"), "1024 1024");
  EXPECT_EQ(limit_line(seen.limits, "Max core file size"), "0 0");
  EXPECT_EQ(limit_line(seen.limits, "Max locked memory"), "0 0");
  const std::string file_size = limit_line(seen.limits, "Max file size");
  EXPECT_NE(file_size.find_first_of("0123456789"), std::string::npos) << "file size unbounded: " << file_size;

  // cgroup: the VM's own, with its limits (v1 here: memory, pids and cpu).
  ASSERT_FALSE(seen.cgroup_dirs.empty()) << "QEMU is in no airlock cgroup";
  const int64_t memory = (int64_t{engine::Limits::kDefaultMemoryMb} + 512) << 20;
  if (seen.cgroup_files.count("memory.max")) {
    EXPECT_EQ(seen.cgroup_files["memory.max"], std::to_string(memory));
    EXPECT_EQ(seen.cgroup_files["cpu.max"], "200000 100000");
  } else {
    EXPECT_EQ(seen.cgroup_files["memory.limit_in_bytes"], std::to_string(memory));
    EXPECT_EQ(seen.cgroup_files["cpu.cfs_quota_us"], "200000");
  }
  EXPECT_EQ(seen.cgroup_files["pids.max"], "256");

  // jail_dir: its root is the jail's own small tree, not the host's.
  EXPECT_TRUE(seen.root_is_own_filesystem);
  for (const auto& entry : seen.root_entries) {
    for (const char* host_only : {"etc", "proc", "sys", "var", "boot", "home", "srv", "opt"}) {
      EXPECT_NE(entry, host_only) << "the host's /" << host_only << " is visible in the jail";
    }
  }
  EXPECT_NE(std::find(seen.root_entries.begin(), seen.root_entries.end(), "usr"), seen.root_entries.end());

  // After the run: cgroups gone (the run directory with the jail: TearDown).
  for (const auto& dir : seen.cgroup_dirs) EXPECT_FALSE(fs::exists(dir)) << dir << " left behind";
}

TEST_F(Confinement, QemuKilledMidRunLeavesNoCgroup) {
  std::vector<std::string> dirs;
  CliOptions options;
  options.extra_env.push_back("AIRLOCK_RUNTIME_DIR=" + runtime_dir_.string());
  options.on_stdout = [&](const std::string& so_far, pid_t) {
    if (!dirs.empty() || so_far.find("ready") == std::string::npos) return;
    for (pid_t qemu : qemu_processes(runtime_dir_.string() + "/")) {
      dirs = cgroup_dirs(qemu);
      ::kill(qemu, SIGKILL);
    }
  };
  CliResult result =
      run_cli({"run", "--no-daemon", "--accel", "tcg", "--lang", "shell", "echo ready; sleep 60"}, options);
  EXPECT_NE(result.exit_code, 0);
  ASSERT_FALSE(dirs.empty()) << "QEMU was in no airlock cgroup: " << result.err;
  for (const auto& dir : dirs) EXPECT_FALSE(fs::exists(dir)) << dir << " left behind";
}

TEST_F(Confinement, AFailedJailStepIsNamedAndLeavesNothing) {
  const fs::path work = runtime_dir_ / "vm";
  fs::create_directories(work);
  vmm::VmConfig config;
  config.name = "airlock-jail-error-test";
  config.kernel.path = "/nonexistent/vmlinux";
  config.kernel.machine = "microvm";
  config.work_dir = work.string();
  try {
    vmm::QemuBackend().start(config);
    FAIL() << "QEMU started with a kernel that does not exist";
  } catch (const Error& e) {
    // The file is taken (open_tree) in the parent, before QEMU is spawned.
    EXPECT_STREQ(e.what(), "open_tree(\"/nonexistent/vmlinux\"): No such file or directory");
  }
  EXPECT_TRUE(fs::is_empty(work)) << "the jail directory was left behind";
  // Cgroups are named "<owner pid>-...": none of ours may remain (other
  // tests' VMs may be alive in the same parent).
  const std::string ours = std::to_string(::getpid()) + "-";
  for (const char* parent :
       {"/sys/fs/cgroup/pids/airlock", "/sys/fs/cgroup/cpu/airlock", "/sys/fs/cgroup/airlock"}) {
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(parent, ec)) {
      EXPECT_NE(entry.path().filename().string().rfind(ours, 0), 0u) << entry.path() << " left behind";
    }
  }
  fs::remove_all(work);
}

TEST_F(Confinement, MissingLayerIsRefusedUnlessWeakerIsolationIsAccepted) {
  engine::EngineOptions options;
  options.manifest_path =
      (fs::path(AIRLOCK_BIN).parent_path().parent_path() / "images" / "manifest.json").string();
  options.runtime_dir = runtime_dir_.string();
  options.simulate_missing_layers = {"cgroup"};
  engine::RunRequest request;
  request.language = "shell";
  request.code = "echo hi";
  {
    engine::Engine refusing(options);
    try {
      refusing.run(request);
      FAIL() << "a run without the cgroup layer was not refused";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::unavailable);
      EXPECT_NE(std::string(e.what()).find("cgroup"), std::string::npos) << e.what();
    }
    EXPECT_TRUE(qemu_processes(runtime_dir_.string() + "/").empty());
  }
  options.allow_weak_isolation = true;
  std::vector<std::string> notices;
  options.notice = [&notices](const std::string& text) { notices.push_back(text); };
  engine::Engine accepting(options);
  ASSERT_FALSE(notices.empty()) << "accepting weaker isolation was not reported";
  EXPECT_NE(notices[0].find("weaker isolation accepted"), std::string::npos) << notices[0];
  EXPECT_NE(notices[0].find("cgroup"), std::string::npos) << notices[0];
  engine::RunResult result = accepting.run(request);
  EXPECT_EQ(result.status, engine::RunStatus::ok) << result.error;
  EXPECT_EQ(result.stdout_data, "hi\n");
}

TEST_F(Confinement, CliAcceptsTheWeakIsolationFlag) {
  CliOptions options;
  options.extra_env.push_back("AIRLOCK_RUNTIME_DIR=" + runtime_dir_.string());
  CliResult result =
      run_cli({"run", "--no-daemon", "--allow-weak-isolation", "--lang", "shell", "echo ok"}, options);
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(result.out, "ok\n");
}

}  // namespace
}  // namespace airlock::testing
