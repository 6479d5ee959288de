#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/unique_fd.h"

namespace airlock {

struct SpawnOptions {
  // Which parent fd becomes which child fd; every other fd is closed in the child.
  // Unmapped 0/1/2 become /dev/null.
  std::vector<std::pair<int /*child*/, int /*parent*/>> fds;
  // Complete environment of the child; nothing is inherited.
  std::vector<std::string> env;
  // Own process group, so a terminal's Ctrl-C reaches only us and we decide.
  bool new_process_group = true;
  // SIGKILL the child if this process dies, however it dies. Beware: Linux
  // ties PR_SET_PDEATHSIG to the *thread* that forked, so a child must not
  // outlive the thread that spawned it (pools spawn from their long-lived
  // refill thread; a request thread destroys its VM before it ends).
  bool die_with_parent = true;
  // CLONE_NEW* flags: the child is created in these new namespaces (clone3),
  // so it is, for example, PID 1 of its own PID namespace from the start.
  uint64_t namespaces = 0;
  // Runs in the child after the fds are in place, just before execve. It runs
  // between fork and exec, so it may make only async-signal-safe calls (no
  // allocation, no locks, raw syscalls for set*id). Returns nullptr, or the
  // operation that failed (a string that outlives the spawn) with errno set;
  // spawn() then throws Error(io) naming that operation and errno.
  std::function<const char*()> before_exec;
};

struct ExitStatus {
  std::optional<int> exit_code;
  std::optional<int> signal;
  std::string describe() const;  // "exited with code 1", "killed by signal 9 (Killed)"
};

// A child process owned by this object: destroying it kills (SIGKILL) and
// reaps the child if it is still running, so no path leaves a process behind.
class ChildProcess {
 public:
  // argv[0] is resolved through PATH when it has no slash. Throws Error(io)
  // if the program cannot be executed (the child's execve errno is reported).
  static ChildProcess spawn(const std::vector<std::string>& argv, const SpawnOptions& options);

  ChildProcess() = default;
  ChildProcess(ChildProcess&& other) noexcept;
  ChildProcess& operator=(ChildProcess&& other) noexcept;
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  ~ChildProcess();

  pid_t pid() const { return pid_; }
  // Readable (POLLIN) once the child has exited; valid until reaped.
  int pidfd() const { return pidfd_.get(); }
  bool running() const { return pid_ > 0 && !status_; }

  // Non-blocking check; returns the status once the child has exited.
  std::optional<ExitStatus> poll();
  ExitStatus wait();
  // Waits up to `timeout`, then SIGKILLs and reaps.
  ExitStatus wait_or_kill(std::chrono::milliseconds timeout);
  void kill(int signal);

 private:
  pid_t pid_ = -1;
  UniqueFd pidfd_;
  std::optional<ExitStatus> status_;
};

struct CommandResult {
  ExitStatus status;
  std::string output;  // stdout and stderr interleaved, capped
};

// Runs a short helper command to completion (e.g. qemu-img), capturing output.
CommandResult run_command(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                          std::chrono::milliseconds timeout);

// Searches PATH (from the given env, or this process's) for a program.
std::optional<std::string> find_program(const std::string& name);

}  // namespace airlock
