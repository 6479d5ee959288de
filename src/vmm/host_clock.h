#pragma once

#include <cstdint>

namespace airlock::vmm {

// The host's TSC rate in kHz. Under TCG the guest's TSC ticks at the host's
// rate, and a guest that has to calibrate it against the emulated PIT hangs in
// some boots, so every kernel command line carries tsc_early_khz=<this>.
// Taken from the host kernel's own calibration when readable (/dev/kmsg),
// otherwise measured against CLOCK_MONOTONIC_RAW. Computed once per process.
uint64_t host_tsc_khz();

// The parsing half, exposed for tests: finds the kernel's TSC calibration in
// kernel log text; 0 if absent.
uint64_t parse_tsc_khz_from_log(const char* log_text);

}  // namespace airlock::vmm
