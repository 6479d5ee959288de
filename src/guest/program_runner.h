#pragma once

#include <sys/types.h>

#include "common/unique_fd.h"
#include "guest/channel.h"
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
};

// Sets the program's hard limits from `request` on process `pid` (0: this
// one): processes of its user, open files, no core dumps. Only
// async-signal-safe calls, so the child of a fork may use it. False on failure.
bool apply_program_limits(pid_t pid, const protocol::Exec& request);

// Forks and execs a program for `request`: own session, chrooted into the
// image, as request.uid/gid with no groups and no_new_privs. With
// `with_control` it also gets a socket at kControlFd.
Program start_program(const protocol::Exec& request, bool with_control);

// Streams one started program over the channel: stdout/stderr as they come
// (capped), stdin as the host sends it, until the program exits or is killed
// (cancel, output limit, backstop timeout). Since the agent is PID 1, every
// other process in the VM belongs to the run, so ending it kills them all
// (kill(-1)) and reaps every zombie, except `spare`: a prestarted interpreter
// this run did not use, kept for the request the VM is being warmed for.
// `request` supplies the limits. Returns false if the host hung up.
bool run_program(Channel& channel, uint32_t stream, const protocol::Exec& request, Program program,
                 pid_t spare = -1);

}  // namespace airlock::guest
