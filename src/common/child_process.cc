#include "common/child_process.h"

#include <fcntl.h>
#include <linux/sched.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "common/error.h"
#include "common/io.h"

namespace airlock {

namespace {

int pidfd_open(pid_t pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }

ExitStatus decode_wait_status(int status) {
  ExitStatus result;
  if (WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) result.signal = WTERMSIG(status);
  return result;
}

// Runs in the forked child: only async-signal-safe calls from here on.
[[noreturn]] void exec_child(const char* path, char* const argv[], char* const envp[],
                             const std::vector<std::pair<int, int>>& fds, int high_base,
                             const SpawnOptions& options, int error_pipe) {
  // The parent reads errno, then the name of the failed operation (none: execve).
  auto fail = [error_pipe](int err, const char* operation = nullptr) {
    ssize_t ignored = ::write(error_pipe, &err, sizeof err);
    if (operation) ignored = ::write(error_pipe, operation, std::strlen(operation));
    (void)ignored;
    ::_exit(127);
  };
  if (options.die_with_parent) {
    if (::prctl(PR_SET_PDEATHSIG, SIGKILL) < 0) fail(errno);
  }
  if (options.new_process_group && ::setpgid(0, 0) < 0) fail(errno);
  // Signal dispositions and mask are inherited across exec: start clean.
  sigset_t empty;
  sigemptyset(&empty);
  ::sigprocmask(SIG_SETMASK, &empty, nullptr);
  for (int sig = 1; sig < NSIG; ++sig) ::signal(sig, SIG_DFL);
  // Move every source fd out of the way first so that mappings may overlap.
  for (size_t i = 0; i < fds.size(); ++i) {
    if (::dup2(fds[i].second, high_base + static_cast<int>(i)) < 0) fail(errno);
  }
  bool mapped[3] = {false, false, false};
  for (size_t i = 0; i < fds.size(); ++i) {
    if (::dup2(high_base + static_cast<int>(i), fds[i].first) < 0) fail(errno);
    if (fds[i].first < 3) mapped[fds[i].first] = true;
  }
  for (int stdio = 0; stdio < 3; ++stdio) {
    if (mapped[stdio]) continue;
    int null_fd = ::open("/dev/null", O_RDWR);
    if (null_fd < 0) fail(errno);
    if (null_fd != stdio) {
      ::dup2(null_fd, stdio);
      ::close(null_fd);
    }
  }
  int max_target = 2;
  for (const auto& mapping : fds) max_target = std::max(max_target, mapping.first);
  // Close everything that is not a mapped target (the error pipe is CLOEXEC).
  for (int fd = 3; fd <= max_target; ++fd) {
    bool keep = std::any_of(fds.begin(), fds.end(), [fd](auto& m) { return m.first == fd; });
    if (!keep && fd != error_pipe) ::close(fd);
  }
  // The error pipe sits above every target; it is CLOEXEC, so execve closes it.
  ::syscall(SYS_close_range, static_cast<unsigned>(max_target + 1), static_cast<unsigned>(error_pipe - 1),
            0U);
  ::syscall(SYS_close_range, static_cast<unsigned>(error_pipe + 1), ~0U, 0U);
  if (options.before_exec) {
    if (const char* failed = options.before_exec()) fail(errno, failed);
    // A change of uid or gid in that step cleared the parent-death signal:
    // arm it again, then catch a parent that died before it was armed. (Its
    // pid means nothing in a new PID namespace, but the parent holds the read
    // end of the error pipe until we exec: no reader left is POLLERR.)
    if (options.die_with_parent) {
      if (::prctl(PR_SET_PDEATHSIG, SIGKILL) < 0) fail(errno, "prctl(PR_SET_PDEATHSIG)");
      pollfd reader{error_pipe, POLLOUT, 0};
      if (::poll(&reader, 1, 0) == 1 && (reader.revents & POLLERR)) ::_exit(127);
    }
  }
  ::execve(path, argv, envp);
  fail(errno);
  ::_exit(127);
}

}  // namespace

std::string ExitStatus::describe() const {
  if (exit_code) return "exited with code " + std::to_string(*exit_code);
  if (signal) return "killed by signal " + std::to_string(*signal) + " (" + strsignal(*signal) + ")";
  return "still running";
}

std::optional<std::string> find_program(const std::string& name) {
  if (name.find('/') != std::string::npos) {
    if (::access(name.c_str(), X_OK) == 0) return name;
    return std::nullopt;
  }
  const char* path_env = std::getenv("PATH");
  std::string path = path_env ? path_env : "/usr/local/bin:/usr/bin:/bin";
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find(':', start);
    if (end == std::string::npos) end = path.size();
    std::string dir = path.substr(start, end - start);
    if (!dir.empty()) {
      std::string candidate = dir + "/" + name;
      if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    }
    start = end + 1;
  }
  return std::nullopt;
}

ChildProcess ChildProcess::spawn(const std::vector<std::string>& argv, const SpawnOptions& options) {
  if (argv.empty()) throw Error(ErrorCode::internal, "spawn: empty argv");
  auto resolved = find_program(argv[0]);
  if (!resolved) {
    throw Error(ErrorCode::not_found, "program '" + argv[0] + "' not found in PATH");
  }
  // Everything the child needs is prepared before fork: the child may not allocate.
  std::vector<char*> argv_ptrs;
  for (const auto& arg : argv) argv_ptrs.push_back(const_cast<char*>(arg.c_str()));
  argv_ptrs.push_back(nullptr);
  std::vector<char*> env_ptrs;
  for (const auto& entry : options.env) env_ptrs.push_back(const_cast<char*>(entry.c_str()));
  env_ptrs.push_back(nullptr);
  int max_fd = 2;
  for (const auto& mapping : options.fds) max_fd = std::max({max_fd, mapping.first, mapping.second});
  const int high_base = max_fd + 64;

  int error_pipe[2];
  if (::pipe2(error_pipe, O_CLOEXEC) < 0) throw_errno("pipe2");
  UniqueFd error_read(error_pipe[0]);
  UniqueFd error_write(error_pipe[1]);
  // The error pipe must survive until execve: give it a number above every target.
  int error_fd = ::fcntl(error_write.get(), F_DUPFD_CLOEXEC, high_base + 64);
  if (error_fd < 0) throw_errno("fcntl(F_DUPFD_CLOEXEC)");
  error_write.reset(error_fd);

  pid_t pid;
  if (options.namespaces != 0) {
    // glibc has no clone3 wrapper; without a stack it returns twice, like fork.
    clone_args args{};
    args.flags = options.namespaces;
    args.exit_signal = SIGCHLD;
    pid = static_cast<pid_t>(::syscall(SYS_clone3, &args, sizeof args));
    if (pid < 0) throw_errno("clone3", "namespaces " + std::to_string(options.namespaces));
  } else {
    pid = ::fork();
    if (pid < 0) throw_errno("fork");
  }
  if (pid == 0) {
    exec_child(resolved->c_str(), argv_ptrs.data(), env_ptrs.data(), options.fds, high_base, options,
               error_write.get());
  }
  ChildProcess child;
  child.pid_ = pid;
  child.pidfd_.reset(pidfd_open(pid));
  error_write.reset();
  // The pipe closes at execve; anything written before that is the child's failure.
  std::string report;
  char buffer[512];
  ssize_t n;
  while ((n = ::read(error_read.get(), buffer, sizeof buffer)) != 0) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    report.append(buffer, static_cast<size_t>(n));
  }
  if (report.size() >= sizeof(int)) {
    int child_errno = 0;
    std::memcpy(&child_errno, report.data(), sizeof child_errno);
    std::string operation = report.substr(sizeof child_errno);
    if (operation.empty()) operation = "execve(\"" + *resolved + "\")";
    child.wait();
    throw Error(ErrorCode::io, operation + ": " + std::strerror(child_errno));
  }
  if (!child.pidfd_) throw_errno("pidfd_open");
  return child;
}

ChildProcess::ChildProcess(ChildProcess&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)),
      pidfd_(std::move(other.pidfd_)),
      status_(std::exchange(other.status_, std::nullopt)) {}

ChildProcess& ChildProcess::operator=(ChildProcess&& other) noexcept {
  if (this != &other) {
    if (running()) {
      kill(SIGKILL);
      wait();
    }
    pid_ = std::exchange(other.pid_, -1);
    pidfd_ = std::move(other.pidfd_);
    status_ = std::exchange(other.status_, std::nullopt);
  }
  return *this;
}

ChildProcess::~ChildProcess() {
  if (running()) {
    kill(SIGKILL);
    try {
      wait();
    } catch (...) {
      // A destructor must not throw; the kernel reaps it when we exit.
    }
  }
}

void ChildProcess::kill(int signal) {
  if (!running()) return;
  // pidfd_send_signal cannot hit a recycled pid.
  if (pidfd_) {
    ::syscall(SYS_pidfd_send_signal, pidfd_.get(), signal, nullptr, 0);
  } else {
    ::kill(pid_, signal);
  }
}

std::optional<ExitStatus> ChildProcess::poll() {
  if (status_) return status_;
  if (pid_ <= 0) return std::nullopt;
  int status = 0;
  pid_t r;
  do {
    r = ::waitpid(pid_, &status, WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r < 0) throw_errno("waitpid");
  if (r == 0) return std::nullopt;
  status_ = decode_wait_status(status);
  pidfd_.reset();
  return status_;
}

ExitStatus ChildProcess::wait() {
  if (status_) return *status_;
  if (pid_ <= 0) throw Error(ErrorCode::internal, "wait on a process that was never started");
  int status = 0;
  pid_t r;
  do {
    r = ::waitpid(pid_, &status, 0);
  } while (r < 0 && errno == EINTR);
  if (r < 0) throw_errno("waitpid");
  status_ = decode_wait_status(status);
  pidfd_.reset();
  return *status_;
}

ExitStatus ChildProcess::wait_or_kill(std::chrono::milliseconds timeout) {
  if (status_) return *status_;
  if (pidfd_) {
    pollfd p{pidfd_.get(), POLLIN, 0};
    int r;
    do {
      r = ::poll(&p, 1, static_cast<int>(timeout.count()));
    } while (r < 0 && errno == EINTR);
  }
  if (auto status = poll()) return *status;
  kill(SIGKILL);
  return wait();
}

CommandResult run_command(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                          std::chrono::milliseconds timeout) {
  auto [read_end, write_end] = make_pipe();
  SpawnOptions options;
  options.fds = {{1, write_end.get()}, {2, write_end.get()}};
  options.env = env;
  ChildProcess child = ChildProcess::spawn(argv, options);
  write_end.reset();
  set_nonblocking(read_end.get());
  CommandResult result;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  constexpr size_t kMaxOutput = 64 * 1024;
  for (;;) {
    auto remaining =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (remaining.count() <= 0) {
      child.kill(SIGKILL);
      child.wait();
      throw Error(ErrorCode::io,
                  "'" + argv[0] + "' did not finish within " + std::to_string(timeout.count()) + " ms");
    }
    pollfd p{read_end.get(), POLLIN, 0};
    int r = ::poll(&p, 1, static_cast<int>(remaining.count()));
    if (r < 0 && errno != EINTR) throw_errno("poll");
    if (r <= 0) continue;
    char buffer[4096];
    auto n = read_some(read_end.get(), buffer, sizeof buffer);
    if (!n) continue;
    if (*n == 0) break;
    if (result.output.size() < kMaxOutput) result.output.append(buffer, *n);
  }
  result.status = child.wait();
  return result;
}

}  // namespace airlock
