#pragma once

#include <chrono>
#include <cstdint>

namespace airlock {

using SteadyClock = std::chrono::steady_clock;

inline int64_t elapsed_ms(SteadyClock::time_point from, SteadyClock::time_point to) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(to - from).count();
}

}  // namespace airlock
