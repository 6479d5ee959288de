#pragma once

#include <sys/types.h>

#include <string>

#include "common/unique_fd.h"

namespace airlock::guest {

// Mounts cgroup2 at /sys/fs/cgroup and enables the memory and pids
// controllers for the execs' groups. False where the kernel has no cgroups:
// execs then run without a group of their own (a run still ends all of them).
bool set_up_exec_cgroups();

// The cgroup of one exec: every process it starts, and every process those
// start, daemonised or not, is in it and cannot leave it (the programs never
// see the cgroup file system). Ending the exec kills the group and nothing
// else; the directory goes once its last process is reaped.
class ExecCgroup {
 public:
  ExecCgroup(const ExecCgroup&) = delete;
  ExecCgroup& operator=(const ExecCgroup&) = delete;
  ExecCgroup() = default;
  // Makes /sys/fs/cgroup/exec-<stream>. Throws if cgroups are set up but the
  // group cannot be made.
  static ExecCgroup create(uint32_t stream);
  ExecCgroup(ExecCgroup&& other) noexcept;
  ExecCgroup& operator=(ExecCgroup&& other) noexcept;
  ~ExecCgroup();

  bool valid() const { return static_cast<bool>(procs_); }
  // The group's cgroup.procs, open for writing: a child writes "0" to it to
  // enter the group before it execs (async-signal-safe).
  int procs_fd() const { return procs_.get(); }
  // Moves a running process (a prestarted interpreter) into the group.
  void adopt(pid_t pid) const;
  // SIGKILLs every process in the group at once (cgroup.kill).
  void kill_all() const;
  // Processes the group's memory limit or the kernel's OOM killer ended.
  uint64_t oom_kills() const;

 private:
  void release();
  std::string path_;
  UniqueFd procs_;
};

// Removes exec groups left empty (their processes reaped since). Cheap when
// none is pending.
void remove_empty_exec_cgroups();

}  // namespace airlock::guest
