// libFuzzer target: API request bodies, bytes from any client that reaches
// airlockd. Any input must end in a request the engine accepts or
// Error(invalid_argument): never a crash, another exception, or a request
// outside the engine's limits.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "common/error.h"
#include "engine/run_request.h"
#include "server/request_parsing.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string body(reinterpret_cast<const char*>(data), size);
  try {
    airlock::engine::RunRequest request = airlock::server::parse_run_request(body);
    // What parsing accepted, the engine accepts too.
    airlock::engine::validate(request);
    if (request.code.empty() || request.code.size() > airlock::engine::Limits::kMaxCodeBytes) std::abort();
  } catch (const airlock::Error& error) {
    if (error.code() != airlock::ErrorCode::invalid_argument) std::abort();
  }
  try {
    int target = airlock::server::parse_pool_target(body);
    if (target < 0 || target > 64) std::abort();
  } catch (const airlock::Error& error) {
    if (error.code() != airlock::ErrorCode::invalid_argument) std::abort();
  }
  return 0;
}
