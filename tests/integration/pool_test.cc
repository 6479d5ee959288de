// Warm pools against real VMs, through the engine's API.

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <thread>

#include "engine/warm_pool.h"
#include "support/airlock_cli.h"

namespace airlock::engine {
namespace {

namespace fs = std::filesystem;

class Pool : public ::testing::Test {
 protected:
  void SetUp() override {
    runtime_dir_ =
        fs::temp_directory_path() /
        ("airlock-pool-" + std::to_string(::getpid()) + "-" +
         std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()).substr(0, 24));
    fs::create_directories(runtime_dir_);
    EngineOptions options;
    options.manifest_path =
        (fs::path(AIRLOCK_BIN).parent_path().parent_path() / "images" / "manifest.json").string();
    options.runtime_dir = runtime_dir_.string();
    engine_.emplace(options);
  }
  void TearDown() override {
    engine_.reset();
    EXPECT_TRUE(testing::qemu_processes(runtime_dir_.string() + "/").empty()) << "QEMU left running";
    EXPECT_TRUE(fs::is_empty(runtime_dir_)) << "run directories left behind";
    fs::remove_all(runtime_dir_);
  }

  static void wait_until_ready(const WarmPool& pool, int count) {
    for (int i = 0; i < 600 && pool.stats().ready < count; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    ASSERT_GE(pool.stats().ready, count) << "the pool did not fill";
  }

  RunRequest shell(const std::string& code) {
    RunRequest request;
    request.language = "shell";
    request.code = code;
    return request;
  }

  fs::path runtime_dir_;
  std::optional<Engine> engine_;
};

TEST_F(Pool, HitAfterWarmUpAndEveryVmIsSingleUse) {
  WarmPool pool(*engine_, profile_of(shell("x")), 1);
  wait_until_ready(pool, 1);
  auto first_lease = pool.acquire();
  EXPECT_TRUE(first_lease.hit());
  RunResult first = engine_->run(shell("echo secret > /tmp/mark; cat /tmp/mark"), nullptr, nullptr,
                                 first_lease.take_guest());
  EXPECT_EQ(first.status, RunStatus::ok) << first.error;
  EXPECT_TRUE(first.pool_hit);
  EXPECT_EQ(first.stdout_data, "secret\n");

  wait_until_ready(pool, 1);
  auto second_lease = pool.acquire();
  EXPECT_TRUE(second_lease.hit());
  RunResult second = engine_->run(shell("cat /tmp/mark 2>/dev/null || echo absent"), nullptr, nullptr,
                                  second_lease.take_guest());
  EXPECT_EQ(second.stdout_data, "absent\n") << "a pooled VM was reused";

  auto stats = pool.stats();
  EXPECT_EQ(stats.hits, 2u);
  EXPECT_EQ(stats.misses, 0u);
  EXPECT_EQ(stats.in_use, 2);  // both leases still alive
}

TEST_F(Pool, EmptyPoolIsAMissAndTheRunStillWorks) {
  WarmPool pool(*engine_, profile_of(shell("x")), 0);
  auto lease = pool.acquire();
  EXPECT_FALSE(lease.hit());
  RunResult result = engine_->run(shell("echo cold"), nullptr, nullptr, lease.take_guest());
  EXPECT_EQ(result.stdout_data, "cold\n");
  EXPECT_FALSE(result.pool_hit);
  EXPECT_EQ(pool.stats().misses, 1u);
}

TEST_F(Pool, AVmKilledWhileWaitingIsNeverHandedOut) {
  WarmPool pool(*engine_, profile_of(shell("x")), 1);
  wait_until_ready(pool, 1);
  for (pid_t pid : testing::qemu_processes(runtime_dir_.string() + "/")) ::kill(pid, SIGKILL);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  auto lease = pool.acquire();
  EXPECT_FALSE(lease.hit()) << "a dead VM came out of the pool";
  RunResult result = engine_->run(shell("echo fine"), nullptr, nullptr, lease.take_guest());
  EXPECT_EQ(result.stdout_data, "fine\n");
  wait_until_ready(pool, 1);  // and the pool refilled
}

TEST_F(Pool, PooledPythonEndsLikeAnInterpreterExitAndShowsNoWarmUp) {
  RunRequest request;
  request.language = "python";
  WarmPool pool(*engine_, profile_of(request), 1);
  wait_until_ready(pool, 1);
  auto lease = pool.acquire();
  ASSERT_TRUE(lease.hit());
  // What interpreter exit does that a program can see: non-daemon threads
  // finish, atexit handlers run, objects __main__ still holds are finalised
  // (a buffered file on a dup of stdout is flushed), and sys.exit's code.
  request.code =
      "import atexit, os, sys, threading, time\n"
      "def late():\n    time.sleep(0.2)\n    print('thread done', flush=True)\n"
      "threading.Thread(target=late).start()\n"
      "atexit.register(lambda: print('atexit ran', flush=True))\n"
      "held = os.fdopen(os.dup(1), 'w')\n"
      "held.write('held file flushed\\n')\n"
      "class Noisy:\n    def __del__(self):\n        print('finalised', file=sys.stderr)\n"
      "keep = Noisy()\n"
      "print('main done', flush=True)\n"
      "sys.exit(3)\n";
  RunResult result = engine_->run(request, nullptr, nullptr, lease.take_guest());
  EXPECT_TRUE(result.pool_hit);
  EXPECT_EQ(result.status, RunStatus::error) << result.error;
  EXPECT_EQ(result.exit_code, 3);
  EXPECT_EQ(result.stdout_data, "main done\nthread done\natexit ran\nheld file flushed\n");
  EXPECT_EQ(result.stderr_data, "finalised\n") << "warm-up output leaked, or finalisation did not run";
}

TEST_F(Pool, ShrinkingDestroysSurplusReadyVms) {
  WarmPool pool(*engine_, profile_of(shell("x")), 2);
  wait_until_ready(pool, 2);
  pool.set_target(0);
  EXPECT_EQ(pool.stats().ready, 0);
  EXPECT_TRUE(testing::qemu_processes(runtime_dir_.string() + "/").empty());
}

}  // namespace
}  // namespace airlock::engine
