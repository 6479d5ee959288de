#include "guest/program_runner.h"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <string>
#include <tuple>
#include <vector>

#include "common/error.h"
#include "common/io.h"
#include "guest/system_setup.h"

namespace airlock::guest {

using protocol::FrameType;

namespace {

// Notices OOM kills during a run from the kernel log: /proc/vmstat's
// oom_kill counter needs VM_EVENT_COUNTERS, which a minimal kernel lacks.
class OomWatch {
 public:
  OomWatch() : kmsg_(::open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC)) {
    if (kmsg_) ::lseek(kmsg_.get(), 0, SEEK_END);  // only what happens from now on
  }
  bool saw_oom_kill() {
    if (!kmsg_) return false;
    char record[2048];
    for (int i = 0; i < 10000; ++i) {
      ssize_t n = ::read(kmsg_.get(), record, sizeof record - 1);
      if (n < 0 && errno == EPIPE) continue;  // overwritten while we read: skip ahead
      if (n <= 0) break;
      record[n] = '\0';
      if (std::strstr(record, "Out of memory") || std::strstr(record, "oom-kill")) seen_ = true;
    }
    return seen_;
  }

 private:
  UniqueFd kmsg_;
  bool seen_ = false;
};

struct OutputStream {
  UniqueFd pipe;
  FrameType type;
  uint64_t limit;
  uint64_t sent = 0;
  bool truncated = false;
};

}  // namespace

bool apply_program_limits(pid_t pid, const protocol::Exec& request) {
  const std::pair<int, uint64_t> limits[] = {
      {RLIMIT_NPROC, request.max_processes},
      {RLIMIT_NOFILE, request.max_open_files},
      {RLIMIT_CORE, 0},
  };
  for (const auto& [resource, value] : limits) {
    rlimit limit{static_cast<rlim_t>(value), static_cast<rlim_t>(value)};
    if (::prlimit(pid, static_cast<__rlimit_resource>(resource), &limit, nullptr) < 0) return false;
  }
  return true;
}

namespace {

// Child side of fork: only async-signal-safe calls until execve.
// execve of argv[0], searched on the program's own PATH (its envp, not the
// agent's) when it has no slash. Returns only on failure, errno set:
// EACCES if some candidate existed but could not be run, else ENOENT.
void exec_program(char* const argv[], char* const envp[]) {
  const char* name = argv[0];
  if (std::strchr(name, '/')) {
    ::execve(name, argv, envp);
    return;
  }
  const char* path = "/usr/local/bin:/usr/bin:/bin";
  for (char* const* entry = envp; *entry; ++entry) {
    if (std::strncmp(*entry, "PATH=", 5) == 0) path = *entry + 5;
  }
  bool denied = false;
  char candidate[4096];
  const size_t name_length = std::strlen(name);
  for (const char* dir = path;; ++dir) {
    const char* end = std::strchr(dir, ':');
    const size_t dir_length = end ? static_cast<size_t>(end - dir) : std::strlen(dir);
    if (dir_length + 1 + name_length < sizeof candidate) {
      std::memcpy(candidate, dir_length ? dir : ".", dir_length ? dir_length : 1);
      size_t at = dir_length ? dir_length : 1;
      candidate[at++] = '/';
      std::memcpy(candidate + at, name, name_length + 1);
      ::execve(candidate, argv, envp);
      if (errno == EACCES || errno == ENOEXEC || errno == EPERM) denied = true;
    }
    if (!end) break;
    dir = end;
  }
  errno = denied ? EACCES : ENOENT;
}

[[noreturn]] void exec_in_sandbox(const protocol::Exec& request, char* const argv[], char* const envp[],
                                  int stdin_fd, int stdout_fd, int stderr_fd, int control_fd, int error_fd) {
  auto fail = [error_fd](const char* step) {
    int err = errno;
    char message[256];
    int length = snprintf(message, sizeof message, "airlock-agent: %s: %s\n", step, strerror(err));
    ssize_t ignored = ::write(error_fd, message, static_cast<size_t>(length));
    (void)ignored;
    ::_exit(127);
  };
  sigset_t empty;
  sigemptyset(&empty);
  ::sigprocmask(SIG_SETMASK, &empty, nullptr);
  for (int sig = 1; sig < NSIG; ++sig) ::signal(sig, SIG_DFL);
  if (::setsid() < 0) fail("setsid");
  if (::dup2(stdin_fd, 0) < 0 || ::dup2(stdout_fd, 1) < 0 || ::dup2(stderr_fd, 2) < 0) fail("dup2");
  if (control_fd >= 0 && ::dup2(control_fd, kControlFd) < 0) fail("dup2");
  if (::chroot(kRootfsMount) < 0) fail("chroot");
  if (::chdir(request.cwd.c_str()) < 0 && ::chdir("/") < 0) fail("chdir");
  if (::setgroups(0, nullptr) < 0) fail("setgroups");
  if (::setresgid(request.gid, request.gid, request.gid) < 0) fail("setresgid");
  if (::setresuid(request.uid, request.uid, request.uid) < 0) fail("setresuid");
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) fail("prctl(PR_SET_NO_NEW_PRIVS)");
  if (!apply_program_limits(0, request)) fail("prlimit");
  ::umask(022);
  exec_program(argv, envp);
  // As shells and docker say it: 127 not found, 126 found but not executable.
  const int code = errno == ENOENT || errno == ENOTDIR ? 127 : 126;
  int err = errno;
  char message[256];
  int length = snprintf(message, sizeof message, "airlock-agent: %s: %s\n", argv[0],
                        code == 127 ? "command not found" : strerror(err));
  ssize_t ignored = ::write(error_fd, message, static_cast<size_t>(length));
  (void)ignored;
  ::_exit(code);
}

// Reads what a prestarted interpreter says on its control socket: once a
// whole line "exit N" (0..255) has come, N. Returns false when there is no
// more to listen for (the notice came, EOF, or something else was said).
// The interpreter runs as the sandbox user, so the notice is believed only
// for what it can affect: this run's own result. Only bytes the kernel says
// `interpreter` itself sent count (SO_PASSCRED, set in start_program): a
// process it forked shares the socket, but its exit is not the run's.
bool read_exit_notice(int control, pid_t interpreter, std::string& said, std::optional<int>& exit_code) {
  char buffer[64];
  alignas(cmsghdr) char ancillary[CMSG_SPACE(sizeof(ucred))];
  iovec data{buffer, sizeof buffer};
  msghdr message{};
  message.msg_iov = &data;
  message.msg_iovlen = 1;
  message.msg_control = ancillary;
  message.msg_controllen = sizeof ancillary;
  ssize_t n = ::recvmsg(control, &message, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
  if (n < 0) return errno == EAGAIN || errno == EINTR;
  if (n == 0) return false;
  // A stream read never joins bytes of two senders while SO_PASSCRED is on.
  const cmsghdr* header = CMSG_FIRSTHDR(&message);
  ucred sender{};
  if (header && header->cmsg_level == SOL_SOCKET && header->cmsg_type == SCM_CREDENTIALS) {
    std::memcpy(&sender, CMSG_DATA(header), sizeof sender);
  }
  if (sender.pid != interpreter) return true;
  said.append(buffer, static_cast<size_t>(n));
  size_t end = said.find('\n');
  if (end == std::string::npos) return said.size() < 64;
  const std::string digits = said.compare(0, 5, "exit ") == 0 ? said.substr(5, end - 5) : "";
  if (!digits.empty() && digits.size() <= 3 && digits.find_first_not_of("0123456789") == std::string::npos &&
      std::stoi(digits) <= 255) {
    exit_code = std::stoi(digits);
  }
  return false;
}

bool is_zombie(long pid) {
  try {
    std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat", 4096);
    size_t close = stat.rfind(')');
    return close != std::string::npos && close + 2 < stat.size() && stat[close + 2] == 'Z';
  } catch (const Error&) {
    return true;  // gone already
  }
}

// SIGKILLs every process but PID 1 (us) and `spare`. With nothing to spare,
// kill(-1) does it atomically; otherwise each live process in /proc is
// killed, pass after pass until none is left (a fork may land between
// passes). Zombies are left for the caller's reaping, which needs them.
void kill_all_but(pid_t spare) {
  if (spare <= 0) {
    ::kill(-1, SIGKILL);
    return;
  }
  for (int pass = 0; pass < 100; ++pass) {
    bool killed_any = false;
    if (DIR* proc = ::opendir("/proc")) {
      while (dirent* entry = ::readdir(proc)) {
        char* end;
        long pid = std::strtol(entry->d_name, &end, 10);
        if (*end != '\0' || pid <= 1 || pid == spare || is_zombie(pid)) continue;
        // Kernel threads ignore SIGKILL; only processes with a user address space count.
        std::string cmdline;
        try {
          cmdline = read_file("/proc/" + std::to_string(pid) + "/cmdline", 16);
        } catch (const Error&) {
          continue;
        }
        if (cmdline.empty()) continue;
        if (::kill(static_cast<pid_t>(pid), SIGKILL) == 0) killed_any = true;
      }
      ::closedir(proc);
    }
    if (!killed_any) return;
  }
}

}  // namespace

Program start_program(const protocol::Exec& request, bool with_control) {
  auto [stdin_read, stdin_write] = make_pipe();
  auto [stdout_read, stdout_write] = make_pipe();
  auto [stderr_read, stderr_write] = make_pipe();
  set_nonblocking(stdin_write.get());
  set_nonblocking(stdout_read.get());
  set_nonblocking(stderr_read.get());
  UniqueFd control_agent, control_program;
  if (with_control) {
    std::tie(control_agent, control_program) = make_socket_pair();
    // Every read then names the process that wrote it (read_exit_notice).
    int on = 1;
    if (::setsockopt(control_agent.get(), SOL_SOCKET, SO_PASSCRED, &on, sizeof on) < 0) {
      throw_errno("setsockopt(SO_PASSCRED)");
    }
  }

  std::vector<char*> argv;
  for (const auto& arg : request.argv) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (const auto& entry : request.env) envp.push_back(const_cast<char*>(entry.c_str()));
  envp.push_back(nullptr);

  pid_t child = ::fork();
  if (child < 0) throw_errno("fork");
  if (child == 0) {
    exec_in_sandbox(request, argv.data(), envp.data(), stdin_read.get(), stdout_write.get(),
                    stderr_write.get(), control_program.get(), stderr_write.get());
  }
  Program program;
  program.pid = child;
  program.stdin_write = std::move(stdin_write);
  program.stdout_read = std::move(stdout_read);
  program.stderr_read = std::move(stderr_read);
  program.control = std::move(control_agent);
  return program;
}

bool run_program(Channel& channel, uint32_t stream, const protocol::Exec& request, Program program,
                 pid_t spare) {
  const auto started = std::chrono::steady_clock::now();
  OomWatch oom_watch;
  const pid_t child = program.pid;
  UniqueFd stdin_write = std::move(program.stdin_write);
  UniqueFd stdout_read = std::move(program.stdout_read);
  UniqueFd stderr_read = std::move(program.stderr_read);
  // A prestarted interpreter says "exit N" here once the program is done and
  // its stdio closed; its own teardown then happens off the critical path.
  UniqueFd control = std::move(program.control);
  std::string control_said;

  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  UniqueFd child_signals(::signalfd(-1, &chld, SFD_NONBLOCK | SFD_CLOEXEC));
  if (!child_signals) throw_errno("signalfd");

  UniqueFd backstop(::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
  if (!backstop) throw_errno("timerfd_create");
  itimerspec when{};
  when.it_value.tv_sec = static_cast<time_t>(request.timeout_ms / 1000);
  when.it_value.tv_nsec = static_cast<long>((request.timeout_ms % 1000) * 1'000'000);
  if (request.timeout_ms == 0) when.it_value.tv_nsec = 1;
  ::timerfd_settime(backstop.get(), 0, &when, nullptr);

  OutputStream outputs[2] = {
      {std::move(stdout_read), FrameType::stdout_data, request.stdout_limit},
      {std::move(stderr_read), FrameType::stderr_data, request.stderr_limit},
  };
  std::string stdin_pending;
  bool stdin_close_requested = false;
  uint64_t stdin_unacked = 0;
  std::optional<int> child_status;
  bool killed_everything = false;
  protocol::ExitReport report;
  bool host_alive = true;
  // Once the program itself has exited, stragglers holding its pipes get a
  // moment to finish writing, then are killed.
  constexpr auto kNoDeadline = std::chrono::steady_clock::time_point::max();
  auto drain_deadline = kNoDeadline;

  auto kill_everything = [&]() {
    if (!killed_everything) kill_all_but(spare);
    killed_everything = true;
  };
  auto ack_stdin = [&]() {
    if (stdin_unacked == 0) return;
    channel.send(FrameType::stdin_ack, stream, protocol::StdinAck{stdin_unacked}.to_payload());
    stdin_unacked = 0;
  };

  auto handle_host_frames = [&]() {
    while (auto frame = channel.next()) {
      if (frame->stream != stream) continue;
      if (frame->type == FrameType::stdin_data) {
        if (stdin_write) {
          stdin_pending += frame->payload;
        } else {
          stdin_unacked += frame->payload.size();
        }
      } else if (frame->type == FrameType::stdin_close) {
        stdin_close_requested = true;
      } else if (frame->type == FrameType::cancel) {
        kill_everything();
      }
    }
  };
  // Frames that arrived in the same read as the exec are already decoded.
  handle_host_frames();

  while (outputs[0].pipe || outputs[1].pipe || !child_status) {
    // The host ended stdin and all of it is written: the program sees EOF.
    // Checked before waiting, since the close may have come with the exec
    // itself (empty stdin), and then nothing else would wake the loop.
    if (stdin_write && stdin_close_requested && stdin_pending.empty()) stdin_write.reset();
    std::vector<pollfd> fds;
    fds.push_back({channel.fd(), host_alive ? short(POLLIN) : short(0), 0});
    fds.push_back({child_signals.get(), POLLIN, 0});
    fds.push_back({backstop.get(), POLLIN, 0});
    fds.push_back({outputs[0].pipe.get(), POLLIN, 0});
    fds.push_back({outputs[1].pipe.get(), POLLIN, 0});
    fds.push_back({stdin_write.get(), stdin_pending.empty() ? short(0) : short(POLLOUT), 0});
    fds.push_back({control.get(), POLLIN, 0});
    int timeout = -1;
    if (drain_deadline != kNoDeadline) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(drain_deadline -
                                                                        std::chrono::steady_clock::now());
      timeout = std::max<int>(0, static_cast<int>(left.count()));
    }
    int ready = ::poll(fds.data(), fds.size(), timeout);
    if (ready < 0 && errno != EINTR) throw_errno("poll");
    if (drain_deadline != kNoDeadline && std::chrono::steady_clock::now() >= drain_deadline) {
      kill_everything();
      drain_deadline = kNoDeadline;
    }

    // Frames from the host: stdin, cancel.
    if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      if (!channel.pump()) {
        host_alive = false;
        kill_everything();
      }
      handle_host_frames();
    }
    // Feed the program's stdin.
    if (stdin_write && !stdin_pending.empty() && (fds[5].revents & (POLLOUT | POLLERR | POLLHUP))) {
      ssize_t n = ::write(stdin_write.get(), stdin_pending.data(), stdin_pending.size());
      if (n > 0) {
        stdin_pending.erase(0, static_cast<size_t>(n));
        stdin_unacked += static_cast<uint64_t>(n);
      } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
        // The program closed its stdin (EPIPE): the rest is discarded, but
        // still acknowledged so the host's flow control never stalls.
        stdin_unacked += stdin_pending.size();
        stdin_pending.clear();
        stdin_write.reset();
      }
    }
    if (host_alive) ack_stdin();

    // Forward output, enforcing the caps exactly.
    for (int i = 0; i < 2; ++i) {
      OutputStream& out = outputs[i];
      if (!out.pipe || !(fds[3 + i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      char buffer[protocol::kDataChunk];
      for (int reads = 0; reads < 16; ++reads) {
        auto n = read_some(out.pipe.get(), buffer, sizeof buffer);
        if (!n) break;
        if (*n == 0) {
          out.pipe.reset();
          break;
        }
        uint64_t room = out.limit > out.sent ? out.limit - out.sent : 0;
        size_t forward = static_cast<size_t>(std::min<uint64_t>(room, *n));
        if (forward > 0 && host_alive) {
          channel.send(out.type, stream, std::string_view(buffer, forward));
        }
        out.sent += forward;
        if (forward < *n && !out.truncated) {
          out.truncated = true;
          report.output_limit = true;
          kill_everything();
        }
      }
    }

    if (control && (fds[6].revents & (POLLIN | POLLHUP | POLLERR))) {
      std::optional<int> exit_code;
      if (!read_exit_notice(control.get(), child, control_said, exit_code)) control.reset();
      if (exit_code && !child_status) {
        child_status = W_EXITCODE(*exit_code, 0);
        drain_deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(200);
      }
    }

    // Reap: the program, and any orphan re-parented to us.
    if (fds[1].revents & POLLIN) {
      signalfd_siginfo info;
      while (::read(child_signals.get(), &info, sizeof info) > 0) {
      }
    }
    for (;;) {
      int status = 0;
      pid_t pid = ::waitpid(-1, &status, WNOHANG);
      if (pid <= 0) break;
      if (pid == child) {
        child_status = status;
        drain_deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(200);
      }
    }

    if (fds[2].revents & POLLIN) {
      report.timed_out = true;
      kill_everything();
      uint64_t expirations;
      ssize_t ignored = ::read(backstop.get(), &expirations, sizeof expirations);
      (void)ignored;
    }
  }
  // No process of this run may outlive it.
  if (!killed_everything) kill_all_but(spare);
  while (::waitpid(-1, nullptr, WNOHANG) > 0) {
  }

  if (WIFEXITED(*child_status)) {
    report.exit_code = WEXITSTATUS(*child_status);
  } else {
    report.signal = WTERMSIG(*child_status);
    report.oom = report.signal == SIGKILL && oom_watch.saw_oom_kill();
  }
  report.stdout_truncated = outputs[0].truncated;
  report.stderr_truncated = outputs[1].truncated;
  report.duration_us = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - started)
          .count());
  if (!host_alive) return false;
  ack_stdin();
  channel.send(FrameType::exit, stream, report.to_payload());
  return true;
}

}  // namespace airlock::guest
