#pragma once

#include <string>

#include "engine/run_request.h"

namespace airlock::server {

// The bodies of API requests (docs/api.yaml), bytes from any client. Each
// returns a request the engine accepts or throws Error(invalid_argument)
// naming the field that is wrong; unknown fields are rejected, not ignored.

// POST /v1/run.
engine::RunRequest parse_run_request(const std::string& body);

// PUT /v1/pools/{name}: the pool's new target size (0-64).
int parse_pool_target(const std::string& body);

// POST /v1/pools: a profile (the run fields language, memory_mb, cpus,
// network, mounts) and a target size. The profile is checked as a run of it
// would be; `request` carries it (its code is a placeholder).
struct PoolRequest {
  engine::RunRequest request;
  int target = 0;
};
PoolRequest parse_pool_request(const std::string& body);

}  // namespace airlock::server
