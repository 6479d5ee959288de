#pragma once

// Helpers for integration tests that drive the real `airlock` binary: run it
// with arguments and stdin, collect its output, and check that nothing it
// started (QEMU processes, run directories) outlives it.

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <set>
#include <string>
#include <vector>

namespace airlock::testing {

struct CliResult {
  int exit_code = -1;  // 128+signal if killed
  std::string out;
  std::string err;
  std::chrono::milliseconds elapsed{0};
};

struct CliOptions {
  std::string stdin_data;
  std::vector<std::string> extra_env;  // NAME=value added to this process's environment
  std::chrono::seconds timeout{120};
  // Called with each stdout chunk as it arrives and the pid of the CLI; may signal it.
  std::function<void(const std::string& so_far, pid_t pid)> on_stdout;
};

CliResult run_cli(const std::vector<std::string>& args, const CliOptions& options = {});

// PIDs of live qemu-system-* processes whose command line mentions `marker`
// (e.g. a test's private runtime directory, which every overlay path is in).
std::set<pid_t> qemu_processes(const std::string& marker = "");

// A TCP port on loopback that is free right now (the kernel picks it).
int free_loopback_port();

}  // namespace airlock::testing
