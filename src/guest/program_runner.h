#pragma once

#include <sys/types.h>

#include <string>

#include "common/unique_fd.h"
#include "guest/exec_cgroup.h"
#include "protocol/messages.h"

namespace airlock::guest {

// The fd at which a prestarted program finds its control socket.
inline constexpr int kControlFd = 3;

// A started program as the agent holds it: the far ends of its stdio pipes
// and, for a prestarted one, its control socket.
struct Program {
  pid_t pid = -1;
  UniqueFd stdin_write;
  UniqueFd stdout_read;
  UniqueFd stderr_read;
  UniqueFd control;
  // A prestarted one's: how its jobs are written (protocol::Exec::job_format).
  std::string job_format = "json";
  // The cgroup it was born in (a prestarted interpreter's goes with it to
  // the exec that takes it).
  ExecCgroup cgroup;
};

// Sets the program's hard limits from `request` on process `pid` (0: this
// one): processes of its user, open files, no core dumps. Only
// async-signal-safe calls, so the child of a fork may use it. False on failure.
bool apply_program_limits(pid_t pid, const protocol::Exec& request);

// Forks and execs a program for `request`: own session, chrooted into the
// image, as request.uid/gid with no groups and no_new_privs. With
// `with_control` it also gets a socket at kControlFd. It is born in
// `cgroup` (when valid), which the Program then holds.
Program start_program(const protocol::Exec& request, bool with_control, ExecCgroup cgroup);

}  // namespace airlock::guest
