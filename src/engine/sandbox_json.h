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

// A user snapshot as the API shows it (docs/api.yaml, Snapshot).
nlohmann::json snapshot_json(const SnapshotMeta& meta);
struct SnapshotRequest {
  std::string name;  // empty: its id
  std::map<std::string, std::string> labels;
};
SnapshotRequest snapshot_request_from_json(const nlohmann::json& document);

nlohmann::json to_json(const ExecRequest& request);
ExecRequest exec_request_from_json(const nlohmann::json& document);

// An exec: its result (once it ended) in the form of a run's; the output
// kept so far while it runs, if the info has it.
nlohmann::json to_json(ExecInfo info);
ExecInfo exec_info_from_json(const nlohmann::json& document);

// A signal by name (TERM, SIGTERM, kill) or number (1-64), as the API and
// the CLI take it. Throws Error(invalid_argument) naming what is wrong.
int signal_number(const nlohmann::json& value);

nlohmann::json to_json(const SandboxInfo& info);
SandboxInfo sandbox_info_from_json(const nlohmann::json& document);

}  // namespace airlock::engine
