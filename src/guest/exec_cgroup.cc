#include "guest/exec_cgroup.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <utility>
#include <vector>

#include "common/error.h"
#include "common/io.h"

namespace airlock::guest {

namespace {

constexpr const char* kCgroupRoot = "/sys/fs/cgroup";
bool cgroups_ready = false;
// Groups whose processes were killed but not yet all reaped: rmdir waits.
std::vector<std::string>& pending_removal() {
  static std::vector<std::string> paths;
  return paths;
}

}  // namespace

bool set_up_exec_cgroups() {
  ::mkdir(kCgroupRoot, 0755);
  if (::mount("cgroup2", kCgroupRoot, "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) < 0 &&
      errno != EBUSY) {
    return false;
  }
  try {
    // Without the memory controller a group still holds and kills its
    // processes; it only cannot tell an OOM kill apart.
    write_file(std::string(kCgroupRoot) + "/cgroup.subtree_control", "+memory +pids");
  } catch (const Error&) {
  }
  cgroups_ready = true;
  return true;
}

ExecCgroup ExecCgroup::create(const std::string& prefix) {
  // Named by a count of this agent's, never by stream: in a copy of a
  // sandbox the new host's streams start afresh while the source's execs
  // still run in their groups, and ending an exec kills its whole group.
  static uint64_t created = 0;
  ExecCgroup group;
  if (!cgroups_ready) return group;
  std::string path;
  for (;;) {
    path = std::string(kCgroupRoot) + "/" + prefix + "-" + std::to_string(++created);
    if (::mkdir(path.c_str(), 0755) == 0) break;
    if (errno != EEXIST) throw_errno("mkdir", path);
  }
  group.path_ = path;
  group.dir_ = UniqueFd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!group.dir_) throw_errno("open", path);
  group.procs_ = UniqueFd(::open((path + "/cgroup.procs").c_str(), O_WRONLY | O_CLOEXEC));
  if (!group.procs_) throw_errno("open", path + "/cgroup.procs");
  return group;
}

ExecCgroup::ExecCgroup(ExecCgroup&& other) noexcept
    : path_(std::exchange(other.path_, {})), dir_(std::move(other.dir_)), procs_(std::move(other.procs_)) {}

ExecCgroup& ExecCgroup::operator=(ExecCgroup&& other) noexcept {
  if (this != &other) {
    release();
    path_ = std::exchange(other.path_, {});
    dir_ = std::move(other.dir_);
    procs_ = std::move(other.procs_);
  }
  return *this;
}

ExecCgroup::~ExecCgroup() { release(); }

void ExecCgroup::release() {
  if (path_.empty()) return;
  kill_all();
  dir_.reset();
  procs_.reset();
  if (::rmdir(path_.c_str()) < 0 && errno == EBUSY) pending_removal().push_back(path_);
  path_.clear();
}

void ExecCgroup::kill_all() const {
  if (path_.empty()) return;
  const int fd = ::open((path_ + "/cgroup.kill").c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return;
  ssize_t ignored = ::write(fd, "1", 1);
  (void)ignored;
  ::close(fd);
}

uint64_t ExecCgroup::oom_kills() const {
  if (path_.empty()) return 0;
  try {
    const std::string events = read_file(path_ + "/memory.events", 4096);
    const size_t at = events.find("oom_kill ");
    if (at == std::string::npos) return 0;
    return std::strtoull(events.c_str() + at + 9, nullptr, 10);
  } catch (const Error&) {
    return 0;
  }
}

void remove_empty_exec_cgroups() {
  auto& pending = pending_removal();
  for (size_t i = 0; i < pending.size();) {
    if (::rmdir(pending[i].c_str()) == 0 || errno != EBUSY) {
      pending[i] = std::move(pending.back());
      pending.pop_back();
    } else {
      ++i;
    }
  }
}

}  // namespace airlock::guest
