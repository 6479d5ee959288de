#include "guest/program_runner.h"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/sched.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
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
                                  int stdin_fd, int stdout_fd, int stderr_fd, int control_fd,
                                  int cgroup_procs_fd, int error_fd) {
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
  // A terminal's program has it as its controlling terminal (job control, /dev/tty).
  if (request.tty && ::ioctl(stdin_fd, TIOCSCTTY, 0) < 0) fail("ioctl(TIOCSCTTY)");
  // Into the exec's cgroup before anything of the program runs.
  if (cgroup_procs_fd >= 0 && ::write(cgroup_procs_fd, "0", 1) < 0) fail("cgroup");
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

}  // namespace

namespace {

// fork(), the child born in the cgroup `cgroup_fd` (clone3 with
// CLONE_INTO_CGROUP); where the kernel cannot, a plain fork whose child
// joins it itself (*join_in_child set).
pid_t fork_into(int cgroup_fd, bool* join_in_child) {
  *join_in_child = false;
  if (cgroup_fd < 0) return ::fork();
  clone_args args{};
  args.flags = CLONE_INTO_CGROUP;
  args.exit_signal = SIGCHLD;
  args.cgroup = static_cast<uint64_t>(cgroup_fd);
  const long child = ::syscall(SYS_clone3, &args, sizeof args);
  if (child >= 0 || (errno != ENOSYS && errno != EINVAL && errno != E2BIG)) return static_cast<pid_t>(child);
  *join_in_child = true;
  return ::fork();
}

}  // namespace

namespace {

// A pty of the root's devpts: the master for the agent, the slave (owned by
// the program's user, so it may reopen /dev/tty) for the program.
std::pair<UniqueFd, UniqueFd> open_terminal(const protocol::Exec& request) {
  const std::string ptmx = std::string(kRootfsMount) + "/dev/pts/ptmx";
  UniqueFd master(::open(ptmx.c_str(), O_RDWR | O_NOCTTY | O_CLOEXEC));
  if (!master) throw_errno("open", ptmx + " (a terminal for a tty exec)");
  int unlock = 0;
  if (::ioctl(master.get(), TIOCSPTLCK, &unlock) < 0) throw_errno("ioctl(TIOCSPTLCK)");
  UniqueFd slave(::ioctl(master.get(), TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC));
  if (!slave) throw_errno("ioctl(TIOCGPTPEER)");
  if (::fchown(slave.get(), request.uid, request.gid) < 0) throw_errno("fchown", "the terminal");
  winsize size{request.rows, request.cols, 0, 0};
  ::ioctl(master.get(), TIOCSWINSZ, &size);
  return {std::move(master), std::move(slave)};
}

}  // namespace

Program start_program(const protocol::Exec& request, bool with_control, ExecCgroup cgroup) {
  UniqueFd stdin_read, stdin_write, stdout_read, stdout_write, stderr_read, stderr_write;
  if (request.tty) {
    // One terminal for all three; its output is all stdout.
    auto [master, slave] = open_terminal(request);
    stdin_write = UniqueFd(::fcntl(master.get(), F_DUPFD_CLOEXEC, 0));
    stdout_write = UniqueFd(::fcntl(slave.get(), F_DUPFD_CLOEXEC, 0));
    stderr_write = UniqueFd(::fcntl(slave.get(), F_DUPFD_CLOEXEC, 0));
    if (!stdin_write || !stdout_write || !stderr_write) throw_errno("dup", "the terminal");
    stdout_read = std::move(master);
    stdin_read = std::move(slave);
    set_nonblocking(stdin_write.get());  // the same open file as stdout_read
  } else {
    std::tie(stdin_read, stdin_write) = make_pipe();
    std::tie(stdout_read, stdout_write) = make_pipe();
    std::tie(stderr_read, stderr_write) = make_pipe();
    set_nonblocking(stdin_write.get());
    set_nonblocking(stdout_read.get());
    set_nonblocking(stderr_read.get());
  }
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

  bool join_in_child = false;
  pid_t child = fork_into(cgroup.dir_fd(), &join_in_child);
  if (child < 0) throw_errno("clone3", "a program");
  if (child == 0) {
    exec_in_sandbox(request, argv.data(), envp.data(), stdin_read.get(), stdout_write.get(),
                    stderr_write.get(), control_program.get(), join_in_child ? cgroup.procs_fd() : -1,
                    stderr_write.get());
  }
  Program program;
  program.pid = child;
  program.stdin_write = std::move(stdin_write);
  program.stdout_read = std::move(stdout_read);
  program.stderr_read = std::move(stderr_read);
  program.control = std::move(control_agent);
  program.cgroup = std::move(cgroup);
  return program;
}

}  // namespace airlock::guest
