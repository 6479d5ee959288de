#include "engine/sandbox_json.h"

#include <algorithm>

#include "common/error.h"

namespace airlock::engine {

using nlohmann::json;

namespace {

[[noreturn]] void reject(const std::string& message) { throw Error(ErrorCode::invalid_argument, message); }

const char* const kProfileFields[] = {"language", "memory_mb", "cpus",       "network",
                                      "mounts",   "pids",      "open_files", "disk_mb"};

std::string text(const json& value, const std::string& name) {
  if (!value.is_string()) reject("field '" + name + "' must be a string");
  return value.get<std::string>();
}

uint64_t output_limit(const json& value, const std::string& name) {
  const int bytes = integer_field(value, name);
  if (bytes < 0) reject("field '" + name + "' must not be negative");
  return static_cast<uint64_t>(bytes);
}

}  // namespace

json to_json(const SandboxRequest& request) {
  const json run = to_json(request.run);
  json body = {{"ttl_s", request.ttl_s}, {"idle_timeout_s", request.idle_timeout_s}};
  for (const char* field : kProfileFields) body[field] = run.at(field);
  return body;
}

SandboxRequest sandbox_request_from_json(const json& document) {
  if (!document.is_object()) reject("request body is not a JSON object");
  SandboxRequest request;
  json run = json::object();
  for (const auto& [key, value] : document.items()) {
    if (key == "ttl_s") {
      request.ttl_s = integer_field(value, key);
    } else if (key == "idle_timeout_s") {
      request.idle_timeout_s = integer_field(value, key);
    } else if (std::find(std::begin(kProfileFields), std::end(kProfileFields), key) !=
               std::end(kProfileFields)) {
      run[key] = value;
    } else {
      reject("unknown field '" + key +
             "' (a sandbox takes language, memory_mb, cpus, network, mounts, pids, " +
             "open_files, disk_mb, ttl_s, idle_timeout_s)");
    }
  }
  run["code"] = "pass";  // a placeholder: execs bring their commands
  request.run = run_request_from_json(run);
  return request;
}

json to_json(const ExecRequest& request) {
  json env = json::object();
  for (const auto& [name, value] : request.env) env[name] = value;
  return {{"argv", request.argv},
          {"env", env},
          {"cwd", request.cwd},
          {"timeout_s", request.timeout_s},
          {"stdin", request.stdin_data},
          {"stdout_limit", request.stdout_limit},
          {"stderr_limit", request.stderr_limit}};
}

ExecRequest exec_request_from_json(const json& document) {
  if (!document.is_object()) reject("request body is not a JSON object");
  ExecRequest request;
  for (const auto& [key, value] : document.items()) {
    if (key == "argv") {
      if (!value.is_array()) reject("field 'argv' must be a list of strings");
      for (const auto& argument : value) request.argv.push_back(text(argument, "argv[]"));
    } else if (key == "env") {
      if (!value.is_object()) reject("field 'env' must be an object of strings");
      for (const auto& [name, entry] : value.items())
        request.env.emplace_back(name, text(entry, "env." + name));
    } else if (key == "cwd") {
      request.cwd = text(value, key);
    } else if (key == "timeout_s") {
      request.timeout_s = integer_field(value, key);
    } else if (key == "stdin") {
      request.stdin_data = text(value, key);
    } else if (key == "stdout_limit") {
      request.stdout_limit = output_limit(value, key);
    } else if (key == "stderr_limit") {
      request.stderr_limit = output_limit(value, key);
    } else {
      reject("unknown field '" + key + "'");
    }
  }
  if (!document.contains("argv")) reject("missing field 'argv'");
  return request;
}

json to_json(const SandboxInfo& info) {
  json mounts = json::array();
  for (const auto& mount : info.profile.mounts) mounts.push_back(mount.to_string());
  return {{"id", info.id},
          {"state", std::string(to_string(info.state))},
          {"stop_reason", info.stop_reason.empty() ? json(nullptr) : json(info.stop_reason)},
          {"language", info.profile.language},
          {"memory_mb", info.profile.memory_mb},
          {"cpus", info.profile.cpus},
          {"network", info.profile.network},
          {"mounts", mounts},
          {"ttl_s", info.ttl_s},
          {"idle_timeout_s", info.idle_timeout_s},
          {"created_at_ms", info.created_at_ms},
          {"expires_at_ms", info.expires_at_ms},
          {"idle_since_ms", info.idle_since_ms},
          {"execs", info.execs},
          {"pool_hit", info.pool_hit}};
}

SandboxInfo sandbox_info_from_json(const json& document) {
  SandboxInfo info;
  info.id = document.at("id").get<std::string>();
  const std::string state = document.at("state").get<std::string>();
  for (SandboxState candidate :
       {SandboxState::creating, SandboxState::ready, SandboxState::busy, SandboxState::stopped}) {
    if (to_string(candidate) == state) info.state = candidate;
  }
  if (document.at("stop_reason").is_string()) info.stop_reason = document["stop_reason"].get<std::string>();
  info.profile.language = document.at("language").get<std::string>();
  info.profile.memory_mb = document.at("memory_mb").get<int>();
  info.profile.cpus = document.at("cpus").get<int>();
  info.profile.network = document.at("network").get<std::string>();
  for (const auto& mount : document.at("mounts"))
    info.profile.mounts.push_back(parse_mount(mount.get<std::string>()));
  info.ttl_s = document.at("ttl_s").get<int>();
  info.idle_timeout_s = document.at("idle_timeout_s").get<int>();
  info.created_at_ms = document.at("created_at_ms").get<int64_t>();
  info.expires_at_ms = document.at("expires_at_ms").get<int64_t>();
  info.idle_since_ms = document.at("idle_since_ms").get<int64_t>();
  info.execs = document.at("execs").get<int>();
  info.pool_hit = document.at("pool_hit").get<bool>();
  return info;
}

}  // namespace airlock::engine
