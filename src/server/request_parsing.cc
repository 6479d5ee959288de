#include "server/request_parsing.h"

#include <cstdint>
#include <nlohmann/json.hpp>
#include <type_traits>
#include <utility>

#include "common/error.h"

namespace airlock::server {

using nlohmann::json;

namespace {

[[noreturn]] void reject(const std::string& message) { throw Error(ErrorCode::invalid_argument, message); }

json parse_body(const std::string& body) {
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

std::string string_field(const json& value, const std::string& name) {
  if (!value.is_string()) reject("field '" + name + "' must be a string");
  return value.get<std::string>();
}

}  // namespace

engine::RunRequest parse_run_request(const std::string& body) {
  json document = parse_body(body);
  engine::RunRequest request;
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
                                                          {"code", &request.code},
                                                          {"stdin", &request.stdin_source.data},
                                                          {"network", &request.network}};
  auto find = [](const auto& table, const std::string& key) {
    for (const auto& [name, target] : table) {
      if (key == name) return target;
    }
    return static_cast<std::remove_cvref_t<decltype(table[0].second)>>(nullptr);
  };
  for (auto& [key, value] : document.items()) {
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
      if (value.size() > engine::Limits::kMaxMounts) {
        reject("field 'mounts' has more than " + std::to_string(engine::Limits::kMaxMounts) + " entries");
      }
      for (const auto& entry : value)
        request.mounts.push_back(engine::parse_mount(string_field(entry, "mounts[]")));
    } else if (key == "fresh_interpreter") {
      if (!value.is_boolean()) reject("field 'fresh_interpreter' must be true or false");
      request.fresh_interpreter = value.get<bool>();
    } else if (key == "env") {
      if (!value.is_object()) reject("field 'env' must be an object of strings");
      for (auto& [name, entry] : value.items())
        request.env.emplace_back(name, string_field(entry, "env." + name));
    } else {
      reject("unknown field '" + key + "'");
    }
  }
  if (!document.contains("language")) reject("missing field 'language'");
  if (!document.contains("code")) reject("missing field 'code'");
  engine::validate(request);
  return request;
}

namespace {

int pool_target(const json& document) {
  if (!document.contains("target")) reject("missing field 'target'");
  int target = integer_field(document["target"], "target");
  if (target < 0 || target > 64) reject("target " + std::to_string(target) + " is out of range (0-64)");
  return target;
}

}  // namespace

int parse_pool_target(const std::string& body) {
  json document = parse_body(body);
  for (auto& [key, value] : document.items()) {
    if (key != "target") reject("unknown field '" + key + "'");
  }
  return pool_target(document);
}

PoolRequest parse_pool_request(const std::string& body) {
  json document = parse_body(body);
  for (auto& [key, value] : document.items()) {
    if (key != "language" && key != "memory_mb" && key != "cpus" && key != "network" && key != "mounts" &&
        key != "target") {
      reject("unknown field '" + key + "' (a pool takes language, memory_mb, cpus, network, mounts, target)");
    }
  }
  PoolRequest pool;
  pool.target = pool_target(document);
  document.erase("target");
  document["code"] = "pass";  // a placeholder: only the profile fields matter
  pool.request = parse_run_request(document.dump());
  return pool;
}

}  // namespace airlock::server
