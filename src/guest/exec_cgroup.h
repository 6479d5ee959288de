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
  // Makes a new /sys/fs/cgroup/<prefix>-<n>, n counted by this agent. Throws if cgroups are set up but the
  // group cannot be made. Without cgroups: an invalid one.
  static ExecCgroup create(const std::string& prefix);
  ExecCgroup(ExecCgroup&& other) noexcept;
  ExecCgroup& operator=(ExecCgroup&& other) noexcept;
  ~ExecCgroup();

  bool valid() const { return static_cast<bool>(procs_); }
  // The group's directory, for clone3(CLONE_INTO_CGROUP): a child born in
  // the group, with no migration (which would wait for an RCU grace
  // period, milliseconds under emulation). -1 without cgroups.
  int dir_fd() const { return dir_.get(); }
  // Its cgroup.procs, for a kernel without CLONE_INTO_CGROUP: the child
  // writes "0" to it before it execs.
  int procs_fd() const { return procs_.get(); }
  // SIGKILLs every process in the group at once (cgroup.kill).
  void kill_all() const;
  // Processes the group's memory limit or the kernel's OOM killer ended.
  uint64_t oom_kills() const;

 private:
  void release();
  std::string path_;
  UniqueFd dir_;
  UniqueFd procs_;
};

// Removes exec groups left empty (their processes reaped since). Cheap when
// none is pending.
void remove_empty_exec_cgroups();

}  // namespace airlock::guest
