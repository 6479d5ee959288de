// QmpClient against a real QEMU (no guest needed: the VM is never started).

#include <gtest/gtest.h>

#include "common/child_process.h"
#include "common/error.h"
#include "common/io.h"
#include "vmm/qmp_client.h"

namespace airlock::vmm {
namespace {

class Qmp : public ::testing::Test {
 protected:
  void SetUp() override {
    auto [host, vm] = make_socket_pair();
    SpawnOptions options;
    options.fds = {{3, vm.get()}};
    qemu_ = ChildProcess::spawn(
        {"qemu-system-x86_64", "-M", "microvm", "-accel", "tcg", "-nodefaults", "-no-user-config", "-display",
         "none", "-S", "-chardev", "socket,id=qmp,fd=3", "-mon", "chardev=qmp,mode=control"},
        options);
    client_ = std::make_unique<QmpClient>(std::move(host), std::chrono::seconds(10));
  }

  ChildProcess qemu_;
  std::unique_ptr<QmpClient> client_;
};

TEST_F(Qmp, AnswersCommands) {
  auto status = client_->execute("query-status");
  EXPECT_EQ(status["running"], false);
  auto version = client_->execute("query-version");
  EXPECT_GE(version["qemu"]["major"].get<int>(), 7);
}

TEST_F(Qmp, FailedCommandCarriesQemusDescription) {
  try {
    client_->execute("no-such-command");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::vm);
    EXPECT_NE(std::string(e.what()).find("no-such-command"), std::string::npos) << e.what();
  }
}

TEST_F(Qmp, QuitEndsQemuAndLaterCommandsFailCleanly) {
  client_->execute("quit");
  auto status = qemu_.wait_or_kill(std::chrono::seconds(5));
  EXPECT_EQ(status.exit_code, 0);
  EXPECT_THROW(client_->execute("query-status"), Error);
}

}  // namespace
}  // namespace airlock::vmm
