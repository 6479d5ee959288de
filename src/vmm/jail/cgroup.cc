// Layer: a cgroup of its own for each QEMU, with limits on memory (guest RAM
// plus QEMU's own overhead), processes/threads and CPU time, so one VMM that
// misbehaves cannot starve the host or the other VMs. cgroup v2 when it is
// the host's hierarchy with these controllers (one directory), else the v1
// controllers (one directory in each of memory, pids and cpu).
//   v2: /sys/fs/cgroup/airlock/<owner pid>-<n>-<vm name>
//   v1: /sys/fs/cgroup/{memory,pids,cpu}/<our cgroup>/airlock/<owner pid>-<n>-<vm name>
// The owner pid in the name lets a later engine remove the cgroups of a
// process that was SIGKILLed before it could (reap_stale below).
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <thread>

#include "common/error.h"
#include "common/io.h"
#include "vmm/jail/layer.h"

namespace airlock::vmm::jail {

namespace {

constexpr const char* kRoot = "/sys/fs/cgroup";
// QEMU's own memory beside guest RAM: TCG's translation cache, device state,
// I/O buffers. Generous: the limit is there to stop a runaway, not to be tight.
constexpr int64_t kOverheadMb = 512;
// QEMU's threads: main, RCU, vCPUs, and a thread pool of up to 64 I/O workers.
constexpr int kMaxTasks = 256;
constexpr int64_t kCpuPeriodUs = 100'000;

bool is_v2() {
  std::string controllers;
  try {
    controllers = read_file(std::string(kRoot) + "/cgroup.controllers", 4096);
  } catch (const Error&) {
    return false;
  }
  return controllers.find("memory") != std::string::npos && controllers.find("pids") != std::string::npos;
}

// This process's cgroup in a v1 controller's hierarchy ("/" if not listed).
std::string own_v1_cgroup(const std::string& controller) {
  std::string table;
  try {
    table = read_file("/proc/self/cgroup", 64 * 1024);
  } catch (const Error&) {
    return "/";
  }
  // Lines are "id:controller[,controller...]:path".
  size_t start = 0;
  while (start < table.size()) {
    size_t end = table.find('\n', start);
    if (end == std::string::npos) end = table.size();
    const std::string line = table.substr(start, end - start);
    start = end + 1;
    const size_t first = line.find(':');
    const size_t second = line.find(':', first + 1);
    if (first == std::string::npos || second == std::string::npos) continue;
    const std::string controllers = "," + line.substr(first + 1, second - first - 1) + ",";
    if (controllers.find("," + controller + ",") != std::string::npos) {
      std::string path = line.substr(second + 1);
      return path.empty() || path.back() != '/' ? path : path.substr(0, path.size() - 1);
    }
  }
  return "/";
}

// Where the "airlock" parent directories live: one for v2 (at the root: v2
// forbids enabling controllers below a cgroup that has processes, like ours),
// one per v1 controller below this process's own cgroup there, so a
// container's or service's limits still cover its VMs.
std::vector<std::string> parents() {
  if (is_v2()) return {std::string(kRoot) + "/airlock"};
  std::vector<std::string> dirs;
  for (const char* controller : {"memory", "pids", "cpu"}) {
    std::string own = own_v1_cgroup(controller);
    if (own == "/") own.clear();
    dirs.push_back(std::string(kRoot) + "/" + controller + own + "/airlock");
  }
  return dirs;
}

void write_control(const std::string& path, const std::string& value) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd) throw_errno("open", path);
  if (::write(fd.get(), value.data(), value.size()) < 0) throw_errno("write " + value, path);
}

// v2 passes controllers down only to children of a directory that enables them.
void enable_v2_controllers(const std::string& dir) {
  write_control(dir + "/cgroup.subtree_control", "+memory +pids +cpu");
}

void make_parent(const std::string& parent, bool v2) {
  if (::mkdir(parent.c_str(), 0755) < 0 && errno != EEXIST) throw_errno("mkdir", parent);
  if (v2) {
    enable_v2_controllers(kRoot);
    enable_v2_controllers(parent);
  }
}

// Removes the cgroups of engines that are gone: a cgroup of a dead owner is
// empty (QEMU died with it), so rmdir succeeds; a live one is left alone.
void reap_stale(const std::string& parent) {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(parent, ec)) {
    const std::string name = entry.path().filename().string();
    const pid_t owner = static_cast<pid_t>(std::atoi(name.c_str()));
    if (owner <= 0 || (::kill(owner, 0) < 0 && errno == ESRCH)) ::rmdir(entry.path().c_str());
  }
}

class Cgroup final : public Layer {
 public:
  std::string_view name() const override { return "cgroup"; }

  std::optional<std::string> probe(const std::string& /*cache_dir*/) const override {
    const bool v2 = is_v2();
    for (const auto& parent : parents()) {
      try {
        make_parent(parent, v2);
      } catch (const Error& e) {
        return std::string(v2 ? "cgroup v2: " : "cgroup v1: ") + e.what();
      }
      if (::access(parent.c_str(), W_OK) < 0) {
        return "cgroup: access(\"" + parent + "\", W_OK): " + std::strerror(errno);
      }
      reap_stale(parent);
      ::rmdir(parent.c_str());  // only if empty: a probe leaves nothing behind
    }
    return std::nullopt;
  }

  void prepare(const JailPlan& plan) override {
    static std::atomic<int> counter{0};
    const bool v2 = is_v2();
    const std::string leaf = std::to_string(::getpid()) + "-" + std::to_string(counter++) + "-" + plan.name;
    const int64_t memory = (plan.memory_mb + kOverheadMb) << 20;
    const std::string cpu_quota = std::to_string((plan.vcpus + 1) * kCpuPeriodUs);
    for (const auto& parent : parents()) {
      const std::string dir = parent + "/" + leaf;
      // Another engine may remove the parent when its last VM goes: make it again.
      int made = -1;
      for (int attempt = 0; attempt < 3 && made < 0; ++attempt) {
        make_parent(parent, v2);
        made = ::mkdir(dir.c_str(), 0755);
        if (made < 0 && errno != ENOENT) break;
      }
      if (made < 0) throw_errno("mkdir", dir);
      dirs_.push_back(dir);
      procs_.push_back(dir + "/cgroup.procs");
      join_ops_.push_back("join the cgroup: write(\"" + procs_.back() + "\", \"0\")");
      if (v2) {
        write_control(dir + "/memory.max", std::to_string(memory));
        write_control(dir + "/pids.max", std::to_string(kMaxTasks));
        write_control(dir + "/cpu.max", cpu_quota + " " + std::to_string(kCpuPeriodUs));
      } else if (parent.rfind(std::string(kRoot) + "/memory/", 0) == 0) {
        write_control(dir + "/memory.limit_in_bytes", std::to_string(memory));
      } else if (parent.rfind(std::string(kRoot) + "/pids/", 0) == 0) {
        write_control(dir + "/pids.max", std::to_string(kMaxTasks));
      } else {
        write_control(dir + "/cpu.cfs_period_us", std::to_string(kCpuPeriodUs));
        write_control(dir + "/cpu.cfs_quota_us", cpu_quota);
      }
    }
  }

  ~Cgroup() override {
    // The VMM has been reaped; its exit may take a moment to leave the cgroup.
    for (const auto& dir : dirs_) {
      for (int attempt = 0; attempt < 50 && ::rmdir(dir.c_str()) < 0 && errno == EBUSY; ++attempt) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      // The shared parent goes with the last VM (rmdir fails while others live).
      ::rmdir(dir.substr(0, dir.rfind('/')).c_str());
    }
  }

  const char* enter() const noexcept override {
    // "0" is the writer itself: the child joins before it execs QEMU, so no
    // thread of QEMU ever runs outside the limits.
    for (size_t i = 0; i < procs_.size(); ++i) {
      int fd = ::open(procs_[i].c_str(), O_WRONLY | O_CLOEXEC);
      if (fd < 0) return join_ops_[i].c_str();
      ssize_t n = ::write(fd, "0", 1);
      int err = errno;
      ::close(fd);
      if (n < 0) {
        errno = err;
        return join_ops_[i].c_str();
      }
    }
    return nullptr;
  }

 private:
  std::vector<std::string> dirs_;
  std::vector<std::string> procs_;
  std::vector<std::string> join_ops_;  // what enter() reports if joining fails
};

}  // namespace

std::unique_ptr<Layer> make_cgroup() { return std::make_unique<Cgroup>(); }

}  // namespace airlock::vmm::jail
