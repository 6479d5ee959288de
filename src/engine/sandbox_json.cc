#include "engine/sandbox_json.h"

#include <algorithm>
#include <cctype>

#include "common/error.h"

namespace airlock::engine {

using nlohmann::json;

namespace {

[[noreturn]] void reject(const std::string& message) { throw Error(ErrorCode::invalid_argument, message); }

const char* const kProfileFields[] = {"language", "image", "memory_mb",  "cpus",   "network",
                                      "mounts",   "pids",  "open_files", "disk_mb"};

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
  for (const char* field : kProfileFields) {
    if (run.contains(field)) body[field] = run.at(field);
  }
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
             "' (a sandbox takes language, image, memory_mb, cpus, network, mounts, pids, " +
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
          {"stderr_limit", request.stderr_limit},
          {"stdin_open", request.stdin_open},
          {"background", request.background},
          {"tty", request.tty},
          {"rows", request.rows},
          {"cols", request.cols}};
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
    } else if (key == "stdin_open" || key == "background" || key == "tty") {
      if (!value.is_boolean()) reject("field '" + key + "' must be true or false");
      (key == "background" ? request.background
       : key == "tty"      ? request.tty
                           : request.stdin_open) = value.get<bool>();
    } else if (key == "rows" || key == "cols") {
      (key == "rows" ? request.rows : request.cols) = integer_field(value, key);
    } else {
      reject("unknown field '" + key + "'");
    }
  }
  if (!document.contains("argv")) reject("missing field 'argv'");
  // A background exec lasts as long as its sandbox unless it says otherwise.
  if (request.background && !document.contains("timeout_s")) request.timeout_s = 0;
  return request;
}

json to_json(ExecInfo info) {
  json body = {{"id", info.id},
               {"argv", info.argv},
               {"background", info.background},
               {"tty", info.tty},
               {"state", info.running ? "running" : "exited"},
               {"started_at_ms", info.started_at_ms},
               {"ended_at_ms", info.ended_at_ms ? json(*info.ended_at_ms) : json(nullptr)},
               {"stdout_dropped", info.stdout_dropped},
               {"stderr_dropped", info.stderr_dropped}};
  if (info.result) body["result"] = to_json(std::move(*info.result));
  if (info.running && (!info.stdout_data.empty() || !info.stderr_data.empty())) {
    EncodedOutput out = encode_output(std::move(info.stdout_data));
    EncodedOutput err = encode_output(std::move(info.stderr_data));
    body["stdout"] = std::move(out.data);
    body["stdout_encoding"] = out.encoding;
    body["stderr"] = std::move(err.data);
    body["stderr_encoding"] = err.encoding;
  }
  return body;
}

ExecInfo exec_info_from_json(const json& document) {
  ExecInfo info;
  info.id = document.at("id").get<std::string>();
  info.argv = document.at("argv").get<std::vector<std::string>>();
  info.background = document.at("background").get<bool>();
  info.running = document.at("state").get<std::string>() == "running";
  info.started_at_ms = document.at("started_at_ms").get<int64_t>();
  if (document.at("ended_at_ms").is_number()) info.ended_at_ms = document["ended_at_ms"].get<int64_t>();
  info.stdout_dropped = document.at("stdout_dropped").get<uint64_t>();
  info.stderr_dropped = document.at("stderr_dropped").get<uint64_t>();
  if (document.contains("result")) info.result = result_from_json(document["result"]);
  return info;
}

int signal_number(const json& value) {
  static const std::pair<const char*, int> kNames[] = {
      {"HUP", 1},   {"INT", 2},   {"QUIT", 3},  {"ILL", 4},     {"TRAP", 5},  {"ABRT", 6},   {"BUS", 7},
      {"FPE", 8},   {"KILL", 9},  {"USR1", 10}, {"SEGV", 11},   {"USR2", 12}, {"PIPE", 13},  {"ALRM", 14},
      {"TERM", 15}, {"CHLD", 17}, {"CONT", 18}, {"STOP", 19},   {"TSTP", 20}, {"TTIN", 21},  {"TTOU", 22},
      {"URG", 23},  {"XCPU", 24}, {"XFSZ", 25}, {"VTALRM", 26}, {"PROF", 27}, {"WINCH", 28}, {"SYS", 31}};
  if (value.is_number_integer()) {
    const int64_t number = value.get<int64_t>();
    if (number < 1 || number > 64) reject("signal " + std::to_string(number) + " is out of range (1-64)");
    return static_cast<int>(number);
  }
  if (!value.is_string()) reject("field 'signal' must be a name (TERM) or a number (15)");
  std::string name = value.get<std::string>();
  if (!name.empty() && name.find_first_not_of("0123456789") == std::string::npos && name.size() <= 2) {
    return signal_number(json(std::stoi(name)));
  }
  for (char& c : name) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (name.rfind("SIG", 0) == 0) name = name.substr(3);
  for (const auto& [known, number] : kNames) {
    if (name == known) return number;
  }
  reject("unknown signal '" + value.get<std::string>() + "' (TERM, KILL, INT, HUP, USR1, ... or 1-64)");
}

json to_json(const SandboxInfo& info) {
  json mounts = json::array();
  for (const auto& mount : info.profile.mounts) mounts.push_back(mount.to_string());
  return {{"id", info.id},
          {"state", std::string(to_string(info.state))},
          {"stop_reason", info.stop_reason.empty() ? json(nullptr) : json(info.stop_reason)},
          {"language", info.profile.language},
          {"image", info.profile.image_name()},
          {"memory_mb", info.profile.memory_mb},
          {"cpus", info.profile.cpus},
          {"network", info.profile.network},
          {"mounts", mounts},
          {"ttl_s", info.ttl_s},
          {"idle_timeout_s", info.idle_timeout_s},
          {"created_at_ms", info.created_at_ms},
          {"expires_at_ms", info.expires_at_ms},
          {"idle_since_ms", info.idle_since_ms},
          {"origin_snapshot", info.origin_snapshot.empty() ? json(nullptr) : json(info.origin_snapshot)},
          {"execs", info.execs},
          {"running_execs", info.running_execs},
          {"pool_hit", info.pool_hit}};
}

json snapshot_json(const SnapshotMeta& meta) {
  return {{"id", meta.id},
          {"name", meta.name},
          {"labels", meta.labels},
          {"parent", meta.parent.empty() ? json(nullptr) : json(meta.parent)},
          {"source_sandbox", meta.source_sandbox},
          {"language", meta.sandbox.value("language", "")},
          {"image", meta.sandbox.value("image", meta.sandbox.value("language", ""))},
          {"memory_mb", meta.sandbox.value("memory_mb", 0)},
          {"created_at_ms", meta.created_at_ms},
          {"paused_ms", meta.paused_ms},
          {"total_ms", meta.total_ms},
          {"depth", meta.depth},
          {"size_bytes", meta.total_bytes()},
          {"files", to_json(meta.files)},
          {"digest", meta.digest}};
}

SnapshotRequest snapshot_request_from_json(const json& document) {
  if (!document.is_object()) reject("request body is not a JSON object");
  SnapshotRequest request;
  for (const auto& [key, value] : document.items()) {
    if (key == "name") {
      if (!value.is_string()) reject("field 'name' must be a string");
      request.name = value.get<std::string>();
      validate_snapshot_name(request.name);
    } else if (key == "labels") {
      if (!value.is_object()) reject("field 'labels' must be an object of strings");
      for (const auto& [label, text] : value.items()) {
        if (!text.is_string()) reject("label '" + label + "' must be a string");
        request.labels[label] = text.get<std::string>();
      }
      validate_labels(request.labels);
    } else {
      reject("unknown field '" + key + "' (a snapshot takes name, labels)");
    }
  }
  return request;
}

SandboxInfo sandbox_info_from_json(const json& document) {
  SandboxInfo info;
  info.id = document.at("id").get<std::string>();
  const std::string state = document.at("state").get<std::string>();
  for (SandboxState candidate : {SandboxState::creating, SandboxState::ready, SandboxState::busy,
                                 SandboxState::paused, SandboxState::stopped}) {
    if (to_string(candidate) == state) info.state = candidate;
  }
  if (document.at("stop_reason").is_string()) info.stop_reason = document["stop_reason"].get<std::string>();
  info.profile.language = document.at("language").get<std::string>();
  info.profile.image = document.value("image", "");
  if (info.profile.image == info.profile.language) info.profile.image.clear();
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
  if (document.at("origin_snapshot").is_string())
    info.origin_snapshot = document["origin_snapshot"].get<std::string>();
  info.execs = document.at("execs").get<int>();
  info.running_execs = document.at("running_execs").get<int>();
  info.pool_hit = document.at("pool_hit").get<bool>();
  return info;
}

}  // namespace airlock::engine
