#pragma once

#include <nlohmann/json.hpp>

#include "engine/request_json.h"
#include "engine/sandbox.h"

namespace airlock::engine {

// The JSON forms of sandboxes and execs (docs/api.yaml), one codec for the
// CLI, airlockd and the tests, as request_json.h is for runs.

// POST /v1/sandboxes: the run fields of a profile and per-exec limits
// (language, memory_mb, cpus, network, mounts, pids, open_files, disk_mb)
// and the lifetimes. `run` is a run request with a placeholder code, to be
// planned (Engine::plan) like a run of the profile.
struct SandboxRequest {
  RunRequest run;
  int ttl_s = SandboxLimits::kDefaultTtlS;
  int idle_timeout_s = SandboxLimits::kDefaultIdleTimeoutS;
};
nlohmann::json to_json(const SandboxRequest& request);
SandboxRequest sandbox_request_from_json(const nlohmann::json& document);

nlohmann::json to_json(const ExecRequest& request);
ExecRequest exec_request_from_json(const nlohmann::json& document);

nlohmann::json to_json(const SandboxInfo& info);
SandboxInfo sandbox_info_from_json(const nlohmann::json& document);

}  // namespace airlock::engine
