#include "common/child_process.h"

#include <gtest/gtest.h>
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include "common/error.h"
#include "common/io.h"

namespace airlock {
namespace {

std::string read_to_end(int fd) {
  std::string data;
  char buffer[256];
  while (auto n = read_some(fd, buffer, sizeof buffer)) {
    if (*n == 0) break;
    data.append(buffer, *n);
  }
  return data;
}

TEST(ChildProcess, ReportsExitCodeAndOutput) {
  auto result = run_command({"sh", "-c", "echo out; echo err >&2; exit 3"}, {}, std::chrono::seconds(5));
  EXPECT_EQ(result.status.exit_code, 3);
  EXPECT_NE(result.output.find("out"), std::string::npos);
  EXPECT_NE(result.output.find("err"), std::string::npos);
}

TEST(ChildProcess, EnvironmentIsExactlyWhatWasGiven) {
  ::setenv("AIRLOCK_TEST_LEAK", "1", 1);
  auto result = run_command({"sh", "-c", "env"}, {"ONLY=this"}, std::chrono::seconds(5));
  EXPECT_NE(result.output.find("ONLY=this"), std::string::npos);
  EXPECT_EQ(result.output.find("AIRLOCK_TEST_LEAK"), std::string::npos);
}

TEST(ChildProcess, MissingProgramIsANamedError) {
  try {
    run_command({"no-such-program-airlock"}, {}, std::chrono::seconds(5));
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no-such-program-airlock"), std::string::npos);
  }
}

TEST(ChildProcess, DestructorKillsAndReaps) {
  pid_t pid;
  {
    ChildProcess child = ChildProcess::spawn({"sleep", "60"}, SpawnOptions{});
    pid = child.pid();
    EXPECT_TRUE(child.running());
  }
  // Reaped: the pid no longer names our child (kill fails with ESRCH).
  EXPECT_EQ(::kill(pid, 0), -1);
}

TEST(ChildProcess, OnlyMappedDescriptorsAreInherited) {
  auto [read_end, write_end] = make_pipe();
  SpawnOptions options;
  options.fds = {{1, write_end.get()}, {7, write_end.get()}};
  ChildProcess child =
      ChildProcess::spawn({"sh", "-c", "ls /proc/self/fd | sort -n | tr '\\n' ' '"}, options);
  write_end.reset();
  std::string listing = read_to_end(read_end.get());
  EXPECT_EQ(child.wait().exit_code, 0);
  // 0-2, the mapped 7, and the fd ls itself opens for /proc/self/fd.
  EXPECT_EQ(listing.rfind("0 1 2 3 7", 0), 0u) << listing;
}

TEST(ChildProcess, WaitOrKillStopsAStubbornChild) {
  ChildProcess child = ChildProcess::spawn({"sh", "-c", "trap '' TERM; sleep 60"}, SpawnOptions{});
  auto status = child.wait_or_kill(std::chrono::milliseconds(50));
  EXPECT_EQ(status.signal, SIGKILL);
}

TEST(ChildProcess, BeforeExecFailureNamesTheOperationAndErrno) {
  SpawnOptions options;
  options.before_exec = []() -> const char* {
    errno = EACCES;
    return "setresuid(1234)";
  };
  try {
    ChildProcess::spawn({"true"}, options);
    FAIL() << "spawn succeeded";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::io);
    EXPECT_STREQ(e.what(), "setresuid(1234): Permission denied");
  }
}

TEST(ChildProcess, NamespacesAreMadeByTheSpawn) {
  if (::geteuid() != 0) GTEST_SKIP() << "new namespaces need root";
  auto [read_end, write_end] = make_pipe();
  SpawnOptions options;
  options.fds = {{1, write_end.get()}};
  options.namespaces = CLONE_NEWPID | CLONE_NEWUTS;
  options.before_exec = []() -> const char* {
    return ::sethostname("jailed", 6) < 0 ? "sethostname" : nullptr;
  };
  ChildProcess child = ChildProcess::spawn({"sh", "-c", "echo $$ $(hostname)"}, options);
  write_end.reset();
  std::string output = read_to_end(read_end.get());
  EXPECT_EQ(child.wait().exit_code, 0);
  EXPECT_EQ(output, "1 jailed\n") << "PID 1 of its own PID namespace, with its own host name";
}

}  // namespace
}  // namespace airlock
