#include "support/airlock_cli.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include "common/child_process.h"
#include "common/error.h"
#include "common/io.h"

extern char** environ;

namespace airlock::testing {

CliResult run_cli(const std::vector<std::string>& args, const CliOptions& options) {
  std::vector<std::string> argv = {AIRLOCK_BIN};
  argv.insert(argv.end(), args.begin(), args.end());
  std::vector<std::string> env;
  for (char** entry = environ; *entry; ++entry) env.emplace_back(*entry);
  env.insert(env.end(), options.extra_env.begin(), options.extra_env.end());

  auto [in_read, in_write] = make_pipe();
  auto [out_read, out_write] = make_pipe();
  auto [err_read, err_write] = make_pipe();
  SpawnOptions spawn;
  spawn.fds = {{1, out_write.get()}, {2, err_write.get()}};
  // No input: stdin is /dev/null (a pipe closed only after the spawn would
  // race with the CLI looking at it).
  if (!options.stdin_data.empty()) spawn.fds.push_back({0, in_read.get()});
  spawn.env = env;
  const auto start = std::chrono::steady_clock::now();
  ChildProcess child = ChildProcess::spawn(argv, spawn);
  in_read.reset();
  out_write.reset();
  err_write.reset();
  set_nonblocking(in_write.get());
  set_nonblocking(out_read.get());
  set_nonblocking(err_read.get());

  CliResult result;
  size_t stdin_offset = 0;
  if (options.stdin_data.empty()) in_write.reset();
  const auto deadline = start + options.timeout;
  while (out_read || err_read) {
    if (std::chrono::steady_clock::now() > deadline) {
      child.kill(SIGKILL);
      throw Error(ErrorCode::internal, "airlock did not finish within the test's limit");
    }
    pollfd fds[3] = {{out_read.get(), POLLIN, 0}, {err_read.get(), POLLIN, 0}, {in_write.get(), POLLOUT, 0}};
    ::poll(fds, 3, 200);
    if (in_write && (fds[2].revents & (POLLOUT | POLLERR | POLLHUP))) {
      ssize_t n = ::write(in_write.get(), options.stdin_data.data() + stdin_offset,
                          options.stdin_data.size() - stdin_offset);
      if (n > 0) stdin_offset += static_cast<size_t>(n);
      if (n < 0 && errno != EAGAIN) in_write.reset();
      if (stdin_offset == options.stdin_data.size()) in_write.reset();
    }
    for (int i = 0; i < 2; ++i) {
      UniqueFd& fd = i == 0 ? out_read : err_read;
      if (!fd || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      char buffer[65536];
      auto n = read_some(fd.get(), buffer, sizeof buffer);
      if (!n) continue;
      if (*n == 0) {
        fd.reset();
        continue;
      }
      (i == 0 ? result.out : result.err).append(buffer, *n);
      if (i == 0 && options.on_stdout) options.on_stdout(result.out, child.pid());
    }
  }
  in_write.reset();
  auto status = child.wait();
  result.elapsed =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
  result.exit_code = status.exit_code ? *status.exit_code : 128 + status.signal.value_or(0);
  return result;
}

std::set<pid_t> qemu_processes(const std::string& marker) {
  std::set<pid_t> pids;
  DIR* proc = ::opendir("/proc");
  if (!proc) return pids;
  while (dirent* entry = ::readdir(proc)) {
    char* end;
    long pid = std::strtol(entry->d_name, &end, 10);
    if (*end != '\0' || pid <= 0) continue;
    try {
      std::string comm = read_file("/proc/" + std::string(entry->d_name) + "/comm", 256);
      std::string stat = read_file("/proc/" + std::string(entry->d_name) + "/stat", 4096);
      // Zombies are dead already; only a running QEMU is a leak.
      size_t close_paren = stat.rfind(')');
      bool zombie =
          close_paren != std::string::npos && stat.size() > close_paren + 2 && stat[close_paren + 2] == 'Z';
      if (comm.rfind("qemu-system", 0) != 0 || zombie) continue;
      if (!marker.empty()) {
        std::string cmdline = read_file("/proc/" + std::string(entry->d_name) + "/cmdline", 1 << 20);
        if (cmdline.find(marker) == std::string::npos) continue;
      }
      pids.insert(static_cast<pid_t>(pid));
    } catch (const Error&) {
    }
  }
  ::closedir(proc);
  return pids;
}

int free_loopback_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address);
  socklen_t length = sizeof address;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  ::close(fd);
  return ntohs(address.sin_port);
}

}  // namespace airlock::testing
