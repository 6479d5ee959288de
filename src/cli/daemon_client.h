#pragma once

#include <optional>
#include <string>

#include "engine/guest_session.h"
#include "engine/run_request.h"
#include "engine/run_result.h"

namespace airlock::cli {

// Runs a request through airlockd: POST /v1/run with an NDJSON stream, output
// handed to `sink` as it arrives. Returns nullopt when no daemon answers on
// `socket_path` (the caller then runs in-process). A cancel closes the
// connection, which makes the daemon stop the run.
std::optional<engine::RunResult> run_via_daemon(const std::string& socket_path,
                                                const engine::RunRequest& request, engine::OutputSink& sink,
                                                const engine::CancelToken& cancel);

}  // namespace airlock::cli
