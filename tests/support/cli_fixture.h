#pragma once

// The fixture of tests that drive the real `airlock` binary: a private
// runtime directory per test, and a check after each test that no QEMU
// process and nothing in that directory outlived it.

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "support/airlock_cli.h"

namespace airlock::testing {

class Cli : public ::testing::Test {
 protected:
  using json = nlohmann::json;

  void SetUp() override {
    runtime_dir_ = std::filesystem::temp_directory_path() /
                   ("airlock-it-" + std::to_string(::getpid()) + "-" +
                    ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(runtime_dir_);
    std::filesystem::create_directories(runtime_dir_);
  }

  // QEMU processes this test started: every one has its overlay in our runtime dir.
  std::set<pid_t> our_qemu_processes() const { return qemu_processes(runtime_dir_.string() + "/"); }

  void TearDown() override {
    // QEMU is SIGKILLed and reaped before the CLI exits, so nothing may linger.
    std::set<pid_t> leaked = our_qemu_processes();
    EXPECT_TRUE(leaked.empty()) << leaked.size() << " qemu process(es) left running";
    for (pid_t pid : leaked) ::kill(pid, SIGKILL);
    std::vector<std::string> left;
    for (auto& entry : std::filesystem::directory_iterator(runtime_dir_))
      left.push_back(entry.path().filename());
    EXPECT_TRUE(left.empty()) << "left in the runtime dir: " << (left.empty() ? "" : left[0]);
    std::filesystem::remove_all(runtime_dir_);
  }

  CliResult airlock(const std::vector<std::string>& args, CliOptions options = {}) {
    options.extra_env.push_back("AIRLOCK_RUNTIME_DIR=" + runtime_dir_.string());
    return run_cli(args, options);
  }

  json airlock_json(std::vector<std::string> args, CliOptions options = {}) {
    args.insert(args.begin() + 1, "--json");
    CliResult result = airlock(args, std::move(options));
    json parsed = json::parse(result.out, nullptr, false);
    EXPECT_FALSE(parsed.is_discarded()) << "not JSON: " << result.out << "\nstderr: " << result.err;
    parsed["cli_exit_code"] = result.exit_code;
    return parsed;
  }

  std::filesystem::path runtime_dir_;
};

}  // namespace airlock::testing
