#include "server/request_parsing.h"

#include <cstdint>
#include <nlohmann/json.hpp>
#include <set>

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
  static const std::set<std::string> known = {
      "language", "code",       "stdin",   "env",     "timeout_s",    "memory_mb",   "cpus",
      "pids",     "open_files", "disk_mb", "network", "stdout_limit", "stderr_limit"};
  for (auto& [key, value] : document.items()) {
    if (!known.count(key)) reject("unknown field '" + key + "'");
  }
  if (!document.contains("language")) reject("missing field 'language'");
  if (!document.contains("code")) reject("missing field 'code'");
  engine::RunRequest request;
  request.language = string_field(document["language"], "language");
  request.code = string_field(document["code"], "code");
  if (document.contains("stdin")) request.stdin_source.data = string_field(document["stdin"], "stdin");
  if (document.contains("env")) {
    const json& env = document["env"];
    if (!env.is_object()) reject("field 'env' must be an object of strings");
    for (auto& [name, value] : env.items())
      request.env.emplace_back(name, string_field(value, "env." + name));
  }
  if (document.contains("timeout_s")) request.timeout_s = integer_field(document["timeout_s"], "timeout_s");
  if (document.contains("memory_mb")) request.memory_mb = integer_field(document["memory_mb"], "memory_mb");
  if (document.contains("cpus")) request.cpus = integer_field(document["cpus"], "cpus");
  if (document.contains("pids")) request.max_processes = integer_field(document["pids"], "pids");
  if (document.contains("network")) request.network = string_field(document["network"], "network");
  if (document.contains("disk_mb")) request.disk_mb = integer_field(document["disk_mb"], "disk_mb");
  if (document.contains("open_files"))
    request.max_open_files = integer_field(document["open_files"], "open_files");
  auto limit = [&](const char* name, uint64_t& target) {
    if (!document.contains(name)) return;
    int value = integer_field(document[name], name);
    if (value < 0) reject(std::string("field '") + name + "' must not be negative");
    target = static_cast<uint64_t>(value);
  };
  limit("stdout_limit", request.stdout_limit);
  limit("stderr_limit", request.stderr_limit);
  engine::validate(request);
  return request;
}

int parse_pool_target(const std::string& body) {
  json document = parse_body(body);
  for (auto& [key, value] : document.items()) {
    if (key != "target") reject("unknown field '" + key + "'");
  }
  if (!document.contains("target")) reject("missing field 'target'");
  int target = integer_field(document["target"], "target");
  if (target < 0 || target > 64) reject("target " + std::to_string(target) + " is out of range (0-64)");
  return target;
}

}  // namespace airlock::server
