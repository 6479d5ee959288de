#include "vmm/host_clock.h"

#include <fcntl.h>
#include <unistd.h>
#include <x86intrin.h>

#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>

#include "common/io.h"
#include "common/unique_fd.h"

namespace airlock::vmm {

namespace {

// "... 2596.145 MHz" -> 2596145
uint64_t parse_mhz(const char* text) {
  char* end = nullptr;
  double mhz = std::strtod(text, &end);
  if (end == text || mhz <= 0) return 0;
  return static_cast<uint64_t>(mhz * 1000.0 + 0.5);
}

uint64_t tsc_khz_from_kmsg() {
  UniqueFd kmsg(::open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC));
  if (!kmsg) return 0;
  std::string log;
  char record[8192];
  // The calibration lines come within the first second of boot; the ring
  // buffer may have wrapped since, in which case we measure instead.
  for (int i = 0; i < 4096; ++i) {
    ssize_t n = ::read(kmsg.get(), record, sizeof record - 1);
    if (n < 0) {
      if (errno == EPIPE) continue;  // records were overwritten while reading
      break;
    }
    record[n] = '\0';
    if (std::strstr(record, "tsc:")) log.append(record, static_cast<size_t>(n));
  }
  return parse_tsc_khz_from_log(log.c_str());
}

uint64_t measure_tsc_khz() {
  timespec start{}, end{};
  ::clock_gettime(CLOCK_MONOTONIC_RAW, &start);
  uint64_t tsc_start = __rdtsc();
  timespec pause{0, 50'000'000};
  ::nanosleep(&pause, nullptr);
  ::clock_gettime(CLOCK_MONOTONIC_RAW, &end);
  uint64_t tsc_end = __rdtsc();
  double ns =
      static_cast<double>(end.tv_sec - start.tv_sec) * 1e9 + static_cast<double>(end.tv_nsec - start.tv_nsec);
  return static_cast<uint64_t>(static_cast<double>(tsc_end - tsc_start) / ns * 1e6 + 0.5);
}

}  // namespace

uint64_t parse_tsc_khz_from_log(const char* log_text) {
  // Prefer the refined calibration, which the kernel itself ends up using.
  const char* refined = std::strstr(log_text, "Refined TSC clocksource calibration: ");
  if (refined) {
    if (uint64_t khz = parse_mhz(refined + std::strlen("Refined TSC clocksource calibration: "))) {
      return khz;
    }
  }
  const char* detected = std::strstr(log_text, "tsc: Detected ");
  if (detected) return parse_mhz(detected + std::strlen("tsc: Detected "));
  return 0;
}

uint64_t host_tsc_khz() {
  static const uint64_t khz = [] {
    uint64_t from_log = tsc_khz_from_kmsg();
    return from_log != 0 ? from_log : measure_tsc_khz();
  }();
  return khz;
}

}  // namespace airlock::vmm
