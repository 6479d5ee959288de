#include "server/request_parsing.h"

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "engine/request_json.h"

namespace airlock::server {

using nlohmann::json;

namespace {

[[noreturn]] void reject(const std::string& message) { throw Error(ErrorCode::invalid_argument, message); }

}  // namespace

engine::RunRequest parse_run_request(const std::string& body) {
  return engine::run_request_from_json(engine::parse_json_object(body));
}

namespace {

int pool_target(const json& document) {
  if (!document.contains("target")) reject("missing field 'target'");
  int target = engine::integer_field(document["target"], "target");
  if (target < 0 || target > 64) reject("target " + std::to_string(target) + " is out of range (0-64)");
  return target;
}

}  // namespace

int parse_pool_target(const std::string& body) {
  json document = engine::parse_json_object(body);
  for (auto& [key, value] : document.items()) {
    if (key != "target") reject("unknown field '" + key + "'");
  }
  return pool_target(document);
}

PoolRequest parse_pool_request(const std::string& body) {
  json document = engine::parse_json_object(body);
  for (auto& [key, value] : document.items()) {
    if (key != "language" && key != "image" && key != "memory_mb" && key != "cpus" && key != "network" &&
        key != "mounts" && key != "target") {
      reject("unknown field '" + key +
             "' (a pool takes language, image, memory_mb, cpus, network, mounts, target)");
    }
  }
  PoolRequest pool;
  pool.target = pool_target(document);
  document.erase("target");
  document["code"] = "pass";  // a placeholder: only the profile fields matter
  pool.request = engine::run_request_from_json(document);
  return pool;
}

}  // namespace airlock::server
