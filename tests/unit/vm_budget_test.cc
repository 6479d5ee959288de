#include "engine/vm_budget.h"

#include <gtest/gtest.h>

#include <thread>

namespace airlock::engine {
namespace {

using std::chrono::milliseconds;

TEST(VmBudget, CountsMemoryWithQemusShareAndCpusUntilReleased) {
  // Two 256 MiB VMs of one vCPU fit (each counts 256 + 64 MiB), a third does not.
  VmBudget budget(640, 8);
  auto first = budget.try_reserve(256, 1);
  auto second = budget.try_reserve(256, 1);
  ASSERT_TRUE(first && second);
  EXPECT_FALSE(budget.try_reserve(256, 1));
  EXPECT_EQ(budget.usage().memory_mb, 640);
  EXPECT_EQ(budget.usage().cpus, 2);
  first.reset();
  EXPECT_TRUE(budget.try_reserve(256, 1));
  // vCPUs are a bound of their own.
  VmBudget cpus(1 << 20, 2);
  auto wide = cpus.try_reserve(128, 2);
  ASSERT_TRUE(wide);
  EXPECT_FALSE(cpus.try_reserve(128, 1));
}

TEST(VmBudget, AClaimTakesRoomBeforeAWaitingRefill) {
  VmBudget budget(320, 8);
  auto held = budget.try_reserve(256, 1);
  ASSERT_TRUE(held);
  VmBudget::Claim claim(budget);
  held.reset();
  // Room freed while a run claims it is not for a pool's refill...
  EXPECT_FALSE(budget.try_reserve(256, 1));
  // ...but for the claimant.
  EXPECT_TRUE(budget.try_reserve(256, 1, true));
}

TEST(VmBudget, AWaiterGetsRoomWhenAVmGoes) {
  VmBudget budget(320, 8);
  auto held = budget.try_reserve(256, 1);
  ASSERT_TRUE(held);
  std::thread releaser([&held] {
    std::this_thread::sleep_for(milliseconds(50));
    held.reset();
  });
  auto got = budget.reserve_within(256, 1, milliseconds(10'000));
  releaser.join();
  EXPECT_TRUE(got);
  EXPECT_FALSE(budget.try_reserve(256, 1)) << "the room went to the waiter";
}

}  // namespace
}  // namespace airlock::engine
