#pragma once

// A private airlockd for each test of a suite: its own directory (socket,
// runtime directory), started by the test with the flags it needs; at the
// end it must stop cleanly and leave no QEMU behind.

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <optional>

#include "support/airlock_cli.h"
#include "support/test_daemon.h"

namespace airlock::testing {

class DaemonFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* test = ::testing::UnitTest::GetInstance()->current_test_info();
    // Short: the daemon's sockets live below it, and a Unix socket's path has at most 107 bytes.
    dir_ = std::filesystem::temp_directory_path() /
           ("airlock-" + std::string(test->test_suite_name()).substr(0, 16) + "-" +
            std::to_string(::getpid()) + "-" + std::string(test->name()).substr(0, 24));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    daemon_.emplace(dir_);
  }
  void TearDown() override {
    if (daemon_->running()) {
      auto status = daemon_->stop();
      EXPECT_TRUE(status && status->exit_code == 0) << "airlockd did not drain and exit cleanly";
    }
    daemon_.reset();
    EXPECT_TRUE(qemu_processes(dir_.string() + "/").empty()) << "QEMU left running";
    std::filesystem::remove_all(dir_);
  }

  std::filesystem::path dir_;
  std::optional<TestDaemon> daemon_;
};

}  // namespace airlock::testing
