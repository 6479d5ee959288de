#pragma once

#include <poll.h>
#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "common/unique_fd.h"
#include "guest/channel.h"
#include "guest/exec_cgroup.h"
#include "guest/program_runner.h"
#include "protocol/messages.h"

namespace airlock::guest {

// Notices OOM kills from the kernel log, for a guest without cgroups:
// /proc/vmstat's oom_kill counter needs VM_EVENT_COUNTERS, which a minimal
// kernel lacks.
class OomWatch {
 public:
  OomWatch();
  bool saw_oom_kill();

 private:
  UniqueFd kmsg_;
  bool seen_ = false;
};

// One exec the agent serves, among any number at once: it forwards the
// program's stdout and stderr (capped) and feeds its stdin as frames of its
// stream come and go, and reports its exit once the program has ended and
// its pipes are drained. Its processes live in its own cgroup, so ending it
// (exit, cancel, output limit, backstop timeout) kills them and no other
// exec's. The agent's loop owns the poll: this object only adds its fds and
// handles what they say.
class RunningExec {
 public:
  using Clock = std::chrono::steady_clock;

  // The program's cgroup is the exec's.
  // `received`: when its exec frame was taken (the report says how long the start took).
  RunningExec(Channel& channel, uint32_t stream, protocol::Exec request, Program program,
              Clock::time_point received);
  RunningExec(const RunningExec&) = delete;
  RunningExec& operator=(const RunningExec&) = delete;

  // Appends the fds it waits on to `fds` (their events go to handle_poll).
  void add_to_poll(std::vector<pollfd>& fds);
  void handle_poll(const std::vector<pollfd>& fds);
  // stdin_data, stdin_close, cancel or signal for its stream.
  void on_frame(const protocol::Frame& frame);
  // A child the agent reaped: true if it was this exec's program.
  bool reap(pid_t pid, int status);
  // When it needs to act without any fd event (its backstop, its drain).
  Clock::time_point wake_at() const;
  void on_time(Clock::time_point now);
  // The host is gone: end everything, send nothing.
  void abandon();
  // The host is a new one that never asked for this exec (a copy of a
  // sandbox): it runs on to its end, its output is read and dropped, its
  // stdin ends, and nothing is sent for it.
  void detach();
  // Sends the exit report once the program is done; true when nothing is left of it to serve.
  bool finish_if_done();

 private:
  struct Output {
    UniqueFd pipe;
    protocol::FrameType type;
    uint64_t limit;
    uint64_t sent = 0;
    bool truncated = false;
  };
  void kill_everything();
  void ack_stdin();
  void forward_output(Output& out);
  void feed_stdin();

  Channel& channel_;
  uint32_t stream_;
  protocol::Exec request_;
  pid_t child_;
  ExecCgroup cgroup_;
  Clock::time_point started_;
  Clock::time_point exit_seen_;
  Clock::time_point backstop_ = Clock::time_point::max();
  // Once the program itself has exited, stragglers holding its pipes get a
  // moment to finish writing, then are killed.
  Clock::time_point drain_deadline_ = Clock::time_point::max();
  UniqueFd stdin_write_;
  Output outputs_[2];
  // A prestarted interpreter says "exit N" here once the program is done.
  UniqueFd control_;
  std::string control_said_;
  std::string stdin_pending_;
  bool stdin_close_requested_ = false;
  uint64_t stdin_unacked_ = 0;
  std::optional<int> child_status_;
  bool killed_ = false;
  bool host_gone_ = false;
  bool detached_ = false;
  bool finished_ = false;
  protocol::ExitReport report_;
  size_t poll_index_ = 0;
  std::optional<OomWatch> oom_watch_;  // only where there is no cgroup to ask
};

}  // namespace airlock::guest
