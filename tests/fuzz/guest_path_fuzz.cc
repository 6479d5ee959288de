// libFuzzer target: the guest agent's path normalisation, which stands
// between a path from the host (soon: from API clients uploading files) and
// openat() inside the guest's root. Any input must end in components that
// cannot leave the root, or Error(invalid_argument).

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "common/error.h"
#include "protocol/guest_path.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path(reinterpret_cast<const char*>(data), size);
  try {
    auto parts = airlock::protocol::split_guest_path(path);
    if (parts.empty()) std::abort();
    for (const auto& part : parts) {
      if (part.empty() || part == "." || part == ".." || part.find('/') != std::string::npos ||
          part.find('\0') != std::string::npos) {
        std::abort();
      }
    }
  } catch (const airlock::Error& error) {
    if (error.code() != airlock::ErrorCode::invalid_argument) std::abort();
  }
  return 0;
}
