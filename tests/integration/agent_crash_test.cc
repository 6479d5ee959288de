// The guest agent dying mid-session. The program cannot end PID 1 (it is
// root, and the program can neither signal nor ptrace it: see the hostile
// suite), so the crash is caused the one way the agent ends itself: a
// message it cannot accept is a protocol violation, the agent's fatal path.
// PID 1 is then gone and the VM stops. The host must turn that into a typed
// error for whatever it was doing and a classified result for the run that
// follows, and leave no QEMU process or file behind.

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "common/error.h"
#include "engine/engine.h"
#include "support/airlock_cli.h"

namespace airlock::testing {
namespace {

namespace fs = std::filesystem;

TEST(AgentCrash, IsATypedErrorThenAnInternalErrorResultAndLeavesNothing) {
  const fs::path dir = fs::temp_directory_path() / ("airlock-agent-crash-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  {
    engine::EngineOptions options;
    options.runtime_dir = dir.string();
    options.manifest_path =
        (fs::path(AIRLOCK_BIN).parent_path().parent_path() / "images" / "manifest.json").string();
    engine::Engine engine(options);
    engine::Profile profile;
    profile.language = "shell";
    engine::ReadyGuest guest = engine.start_guest(profile);

    // A hosts entry that is not a name: the agent's parser calls it a
    // protocol violation, and the agent ends.
    protocol::NetworkSetup poisoned;
    poisoned.address = "10.0.2.15";
    poisoned.hosts = {{"not a name\n0.0.0.0 evil", "10.0.2.100"}};
    try {
      guest.session().setup_network(poisoned, SteadyClock::now() + std::chrono::seconds(20));
      ADD_FAILURE() << "the agent accepted a malformed message";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::vm) << e.what();
      EXPECT_NE(std::string(e.what()).find("stopped unexpectedly"), std::string::npos) << e.what();
    }

    // The dead guest is then handed a request, as a pool would: a result, not a hang or a throw.
    engine::RunRequest request;
    request.language = "shell";
    request.code = "echo never";
    request.timeout_s = 10;
    engine::RunResult result = engine.run(request, nullptr, nullptr, std::move(guest));
    EXPECT_EQ(result.status, engine::RunStatus::internal_error) << result.error;
    EXPECT_TRUE(result.stdout_data.empty());
    EXPECT_NE(result.error.find("stopped unexpectedly"), std::string::npos) << result.error;
  }  // the engine waits for its retired VMs
  EXPECT_TRUE(qemu_processes(dir.string() + "/").empty()) << "QEMU left running";
  std::vector<std::string> left;
  for (const auto& entry : fs::directory_iterator(dir)) left.push_back(entry.path().filename());
  EXPECT_TRUE(left.empty()) << "left behind: " << (left.empty() ? "" : left.front());
  fs::remove_all(dir);
}

}  // namespace
}  // namespace airlock::testing
