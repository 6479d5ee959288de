#pragma once

#include <string>

#include "engine/run_request.h"

namespace airlock::server {

// The bodies of API requests (docs/api.yaml), bytes from any client. Each
// returns a well-typed request (its bounds are checked once, by
// Engine::plan) or throws Error(invalid_argument) naming the field that is
// wrong; unknown fields are rejected, not ignored.

// POST /v1/run.
engine::RunRequest parse_run_request(const std::string& body);

// PUT /v1/pools/{name}: the pool's new target size (0-64).
int parse_pool_target(const std::string& body);

// POST /v1/pools: a profile (the run fields language, memory_mb, cpus,
// network, mounts) and a target size; `request` carries the profile (its
// code is a placeholder), to be planned as a run of it would be.
struct PoolRequest {
  engine::RunRequest request;
  int target = 0;
};
PoolRequest parse_pool_request(const std::string& body);

}  // namespace airlock::server
