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

}  // namespace airlock::server
