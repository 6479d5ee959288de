#include "engine/run_result.h"

#include "common/error.h"
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

namespace {

// Appends the base64 of `bytes` to `out`.
void append_base64(std::string& out, std::string_view bytes) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  out.reserve(out.size() + (bytes.size() + 2) / 3 * 4);
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
}

}  // namespace

std::string base64_encode(std::string_view bytes) {
  std::string out;
  append_base64(out, bytes);
  return out;
}

namespace {

// The size of `bytes` as a JSON string's contents (nlohmann's escaping).
size_t escaped_size(std::string_view bytes) {
  size_t size = 0;
  for (unsigned char c : bytes) {
    if (c == '"' || c == '\\' || c == '\b' || c == '\f' || c == '\n' || c == '\r' || c == '\t') {
      size += 2;
    } else {
      size += c < 0x20 ? 6 : 1;
    }
  }
  return size;
}

void put_output(json& object, const char* name, std::string bytes) {
  EncodedOutput encoded = encode_output(std::move(bytes));
  object[name] = std::move(encoded.data);
  object[std::string(name) + "_encoding"] = encoded.encoding;
}

json optional_int(const std::optional<int>& value) { return value ? json(*value) : json(nullptr); }

}  // namespace

namespace {

// Newlines, tabs and quotes cost 2 each: any text stays text. Other control
// bytes cost 6: output made of them goes as base64 (4/3).
bool goes_as_text(std::string_view bytes) {
  return is_valid_utf8(bytes) && escaped_size(bytes) <= 2 * bytes.size();
}

// Appends `"name":<bytes as encoded>,"name_encoding":"..."` to `out`, the
// encoding written straight into it: the output is in memory as kept and as
// sent, never a third time as a JSON value of its own.
void append_output(std::string& out, std::string_view name, std::string bytes) {
  const bool text = goes_as_text(bytes);
  out.append("\"").append(name).append("\":");
  if (text) {
    nlohmann::detail::serializer<json> serializer(nlohmann::detail::output_adapter<char>(out), ' ',
                                                  json::error_handler_t::strict);
    serializer.dump(json(std::move(bytes)), false, false, 0);
  } else {
    out += '"';
    append_base64(out, bytes);
    out += '"';
  }
  out.append(",\"").append(name).append("_encoding\":\"").append(text ? "utf-8" : "base64").append("\"");
}

}  // namespace

EncodedOutput encode_output(std::string bytes) {
  if (goes_as_text(bytes)) return {std::move(bytes), "utf-8"};
  return {base64_encode(bytes), "base64"};
}

json to_json(RunResult result) {
  json object;
  object["status"] = std::string(to_string(result.status));
  object["exit_code"] = optional_int(result.exit_code);
  object["signal"] = optional_int(result.signal);
  put_output(object, "stdout", std::move(result.stdout_data));
  put_output(object, "stderr", std::move(result.stderr_data));
  object["stdout_truncated"] = result.stdout_truncated;
  object["stderr_truncated"] = result.stderr_truncated;
  object["timing"] = {{"setup_ms", result.timing.setup_ms},
                      {"boot_ms", result.timing.boot_ms},
                      {"execute_ms", result.timing.execute_ms},
                      {"total_ms", result.timing.total_ms}};
  if (const auto& trace = result.timing.trace) {
    object["timing"]["trace_us"] = {
        {"acquire", trace->acquire_us},     {"exec", trace->exec_us},
        {"finish", trace->finish_us},       {"guest_start", trace->guest_start_us},
        {"guest_run", trace->guest_run_us}, {"guest_end", trace->guest_end_us}};
  }
  object["accel"] = result.accel;
  object["from_snapshot"] = result.from_snapshot;
  object["pool_hit"] = result.pool_hit;
  object["network_denied"] = result.network_denied;
  object["error"] = result.error.empty() ? json(nullptr) : json(result.error);
  return object;
}

std::string to_json_text(RunResult result) {
  std::string stdout_bytes = std::move(result.stdout_data);
  std::string stderr_bytes = std::move(result.stderr_data);
  json rest = to_json(std::move(result));
  for (const char* field : {"stdout", "stdout_encoding", "stderr", "stderr_encoding"}) rest.erase(field);
  std::string out = rest.dump(-1, ' ', false, json::error_handler_t::replace);
  out.pop_back();  // the closing brace: the output fields follow
  // Room for text escaped to twice its size; pages never written are never touched.
  out.reserve(out.size() + 2 * (stdout_bytes.size() + stderr_bytes.size()) + 128);
  out += ',';
  append_output(out, "stdout", std::move(stdout_bytes));
  out += ',';
  append_output(out, "stderr", std::move(stderr_bytes));
  out += '}';
  return out;
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

std::string base64_decode(std::string_view text) {
  static const std::string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  uint32_t buffer = 0;
  int bits = 0;
  for (char c : text) {
    if (c == '=') break;
    size_t value = alphabet.find(c);
    if (value == std::string::npos) throw Error(ErrorCode::protocol, "invalid base64 in a run result");
    buffer = (buffer << 6) | static_cast<uint32_t>(value);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((buffer >> bits) & 0xff));
    }
  }
  return out;
}

RunResult result_from_json(const json& object) {
  try {
    RunResult result;
    const std::string status = object.at("status").get<std::string>();
    bool known = false;
    for (RunStatus candidate : {RunStatus::ok, RunStatus::error, RunStatus::timeout, RunStatus::oom,
                                RunStatus::output_limit, RunStatus::killed, RunStatus::internal_error}) {
      if (to_string(candidate) == status) {
        result.status = candidate;
        known = true;
      }
    }
    if (!known) throw Error(ErrorCode::protocol, "unknown run status '" + status + "'");
    if (!object.at("exit_code").is_null()) result.exit_code = object.at("exit_code").get<int>();
    if (!object.at("signal").is_null()) result.signal = object.at("signal").get<int>();
    auto output = [&object](const char* name) {
      std::string data = object.at(name).get<std::string>();
      return object.at(std::string(name) + "_encoding") == "base64" ? base64_decode(data) : data;
    };
    result.stdout_data = output("stdout");
    result.stderr_data = output("stderr");
    result.stdout_truncated = object.at("stdout_truncated").get<bool>();
    result.stderr_truncated = object.at("stderr_truncated").get<bool>();
    const json& timing = object.at("timing");
    result.timing = {timing.at("setup_ms").get<int64_t>(), timing.at("boot_ms").get<int64_t>(),
                     timing.at("execute_ms").get<int64_t>(), timing.at("total_ms").get<int64_t>(),
                     std::nullopt};
    if (auto trace = timing.find("trace_us"); trace != timing.end() && trace->is_object()) {
      result.timing.trace =
          RunTrace{trace->value("acquire", int64_t{0}),   trace->value("exec", int64_t{0}),
                   trace->value("finish", int64_t{0}),    trace->value("guest_start", int64_t{0}),
                   trace->value("guest_run", int64_t{0}), trace->value("guest_end", int64_t{0})};
    }
    result.accel = object.at("accel").get<std::string>();
    result.from_snapshot = object.value("from_snapshot", false);
    result.pool_hit = object.value("pool_hit", false);
    if (auto denied = object.find("network_denied"); denied != object.end() && denied->is_array()) {
      for (const auto& reason : *denied) {
        if (reason.is_string()) result.network_denied.push_back(reason.get<std::string>());
      }
    }
    if (!object.at("error").is_null()) result.error = object.at("error").get<std::string>();
    return result;
  } catch (const json::exception& e) {
    throw Error(ErrorCode::protocol, std::string("malformed run result: ") + e.what());
  }
}

}  // namespace airlock::engine
