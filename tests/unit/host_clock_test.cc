#include "vmm/host_clock.h"

#include <gtest/gtest.h>

namespace airlock::vmm {
namespace {

TEST(HostClock, PrefersTheRefinedCalibration) {
  const char* log =
      "6,1,0,-;tsc: Detected 2596.122 MHz processor\n"
      "6,2,0,-;tsc: Refined TSC clocksource calibration: 2596.145 MHz\n";
  EXPECT_EQ(parse_tsc_khz_from_log(log), 2596145u);
}

TEST(HostClock, FallsBackToTheDetectedRate) {
  EXPECT_EQ(parse_tsc_khz_from_log("tsc: Detected 3000.000 MHz processor"), 3000000u);
  EXPECT_EQ(parse_tsc_khz_from_log("nothing about clocks"), 0u);
}

TEST(HostClock, HostRateIsPlausible) {
  // Whatever the source, a real x86 TSC runs between 100 MHz and 10 GHz.
  uint64_t khz = host_tsc_khz();
  EXPECT_GT(khz, 100'000u);
  EXPECT_LT(khz, 10'000'000u);
}

}  // namespace
}  // namespace airlock::vmm
