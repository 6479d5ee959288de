#include "engine/run_result.h"

#include "engine/run_request.h"

namespace airlock::engine {

using nlohmann::json;

std::string_view to_string(RunStatus status) {
  switch (status) {
    case RunStatus::ok: return "ok";
    case RunStatus::error: return "error";
    case RunStatus::timeout: return "timeout";
    case RunStatus::oom: return "oom";
    case RunStatus::output_limit: return "output_limit";
    case RunStatus::killed: return "killed";
    case RunStatus::internal_error: return "internal_error";
  }
  return "internal_error";
}

std::string base64_encode(std::string_view bytes) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    uint32_t n = (static_cast<uint8_t>(bytes[i]) << 16) | (static_cast<uint8_t>(bytes[i + 1]) << 8) |
                 static_cast<uint8_t>(bytes[i + 2]);
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += kAlphabet[(n >> 6) & 63];
    out += kAlphabet[n & 63];
  }
  if (i < bytes.size()) {
    uint32_t n = static_cast<uint8_t>(bytes[i]) << 16;
    if (i + 1 < bytes.size()) n |= static_cast<uint8_t>(bytes[i + 1]) << 8;
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += i + 1 < bytes.size() ? kAlphabet[(n >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

namespace {

void put_output(json& object, const char* name, const std::string& bytes) {
  const bool text = is_valid_utf8(bytes);
  object[name] = text ? bytes : base64_encode(bytes);
  object[std::string(name) + "_encoding"] = text ? "utf-8" : "base64";
}

json optional_int(const std::optional<int>& value) { return value ? json(*value) : json(nullptr); }

}  // namespace

json to_json(const RunResult& result) {
  json object;
  object["status"] = std::string(to_string(result.status));
  object["exit_code"] = optional_int(result.exit_code);
  object["signal"] = optional_int(result.signal);
  put_output(object, "stdout", result.stdout_data);
  put_output(object, "stderr", result.stderr_data);
  object["stdout_truncated"] = result.stdout_truncated;
  object["stderr_truncated"] = result.stderr_truncated;
  object["timing"] = {{"setup_ms", result.timing.setup_ms},
                      {"boot_ms", result.timing.boot_ms},
                      {"execute_ms", result.timing.execute_ms},
                      {"total_ms", result.timing.total_ms}};
  object["accel"] = result.accel;
  object["from_snapshot"] = result.from_snapshot;
  object["pool_hit"] = result.pool_hit;
  object["error"] = result.error.empty() ? json(nullptr) : json(result.error);
  return object;
}

int exit_code_for(const RunResult& result) {
  switch (result.status) {
    case RunStatus::ok:
    case RunStatus::error: return result.exit_code.value_or(1);
    case RunStatus::timeout: return 124;
    case RunStatus::oom: return 137;
    case RunStatus::killed: return 128 + result.signal.value_or(9);
    case RunStatus::output_limit:
    case RunStatus::internal_error: return 125;
  }
  return 125;
}

}  // namespace airlock::engine
