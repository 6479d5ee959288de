#include "engine/request_json.h"

#include <cstdint>
#include <type_traits>
#include <utility>

#include "common/error.h"

namespace airlock::engine {

using nlohmann::json;

namespace {

[[noreturn]] void reject(const std::string& message) { throw Error(ErrorCode::invalid_argument, message); }

std::string string_field(const json& value, const std::string& name) {
  if (!value.is_string()) reject("field '" + name + "' must be a string");
  return value.get<std::string>();
}

}  // namespace

json parse_json_object(const std::string& body) {
  json document = json::parse(body, nullptr, false);
  if (document.is_discarded()) reject("request body is not valid JSON");
  if (!document.is_object()) reject("request body is not a JSON object");
  return document;
}

int integer_field(const json& value, const std::string& name) {
  if (!value.is_number_integer()) reject("field '" + name + "' must be an integer");
  // Unsigned first: a number past INT64_MAX must not wrap into range.
  if (value.is_number_unsigned() ? value.get<uint64_t>() > INT32_MAX
                                 : value.get<int64_t>() < INT32_MIN || value.get<int64_t>() > INT32_MAX) {
    reject("field '" + name + "' is out of range");
  }
  return static_cast<int>(value.get<int64_t>());
}

json to_json(const RunRequest& request) {
  json env = json::object();
  for (const auto& [name, value] : request.env) env[name] = value;
  json mounts = json::array();
  for (const auto& mount : request.mounts) mounts.push_back(mount.to_string());
  json body = {{"language", request.language},
               {"code", request.code},
               {"env", env},
               {"timeout_s", request.timeout_s},
               {"memory_mb", request.memory_mb},
               {"cpus", request.cpus},
               {"pids", request.max_processes},
               {"open_files", request.max_open_files},
               {"disk_mb", request.disk_mb},
               {"network", request.network},
               {"mounts", mounts},
               {"stdout_limit", request.stdout_limit},
               {"stderr_limit", request.stderr_limit},
               {"stdin", request.stdin_source.data}};
  if (!request.image.empty()) body["image"] = request.image;
  if (request.language.empty()) body.erase("language");
  if (request.fresh_interpreter) body["fresh_interpreter"] = true;
  return body;
}

RunRequest run_request_from_json(const json& document) {
  if (!document.is_object()) reject("request body is not a JSON object");
  RunRequest request;
  // Each field is named once, where it is parsed: a field this loop does not
  // take is unknown, so the accepted set and the parsing cannot drift apart.
  const std::pair<const char*, int*> integers[] = {{"timeout_s", &request.timeout_s},
                                                   {"memory_mb", &request.memory_mb},
                                                   {"cpus", &request.cpus},
                                                   {"pids", &request.max_processes},
                                                   {"open_files", &request.max_open_files},
                                                   {"disk_mb", &request.disk_mb}};
  const std::pair<const char*, uint64_t*> output_limits[] = {{"stdout_limit", &request.stdout_limit},
                                                             {"stderr_limit", &request.stderr_limit}};
  const std::pair<const char*, std::string*> strings[] = {{"language", &request.language},
                                                          {"image", &request.image},
                                                          {"code", &request.code},
                                                          {"stdin", &request.stdin_source.data},
                                                          {"network", &request.network}};
  auto find = [](const auto& table, const std::string& key) {
    for (const auto& [name, target] : table) {
      if (key == name) return target;
    }
    return static_cast<std::remove_cvref_t<decltype(table[0].second)>>(nullptr);
  };
  for (const auto& [key, value] : document.items()) {
    if (auto* text = find(strings, key)) {
      *text = string_field(value, key);
    } else if (auto* number = find(integers, key)) {
      *number = integer_field(value, key);
    } else if (auto* limit = find(output_limits, key)) {
      int bytes = integer_field(value, key);
      if (bytes < 0) reject("field '" + key + "' must not be negative");
      *limit = static_cast<uint64_t>(bytes);
    } else if (key == "mounts") {
      if (!value.is_array()) reject("field 'mounts' must be a list of \"ro:HOST_DIR:GUEST_DIR\" strings");
      if (value.size() > Limits::kMaxMounts) {
        reject("field 'mounts' has more than " + std::to_string(Limits::kMaxMounts) + " entries");
      }
      for (const auto& entry : value) request.mounts.push_back(parse_mount(string_field(entry, "mounts[]")));
    } else if (key == "fresh_interpreter") {
      if (!value.is_boolean()) reject("field 'fresh_interpreter' must be true or false");
      request.fresh_interpreter = value.get<bool>();
    } else if (key == "env") {
      if (!value.is_object()) reject("field 'env' must be an object of strings");
      for (const auto& [name, entry] : value.items()) {
        request.env.emplace_back(name, string_field(entry, "env." + name));
      }
    } else {
      reject("unknown field '" + key + "'");
    }
  }
  if (!document.contains("language") && !document.contains("image")) {
    reject("missing field 'language' (or an 'image' to take it from)");
  }
  if (!document.contains("code")) reject("missing field 'code'");
  return request;
}

}  // namespace airlock::engine
