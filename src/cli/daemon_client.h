#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

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

// The same for any streaming endpoint of runs' shape (a sandbox's execs):
// POST `body` to `target`. Errors: Error with the code the status means (404
// not_found, 409 conflict, 429 overloaded, 400 invalid_argument).
std::optional<engine::RunResult> stream_via_daemon(const std::string& socket_path, const std::string& target,
                                                   const std::string& body, engine::OutputSink& sink,
                                                   const engine::CancelToken& cancel);

// GET a stream of output events (an exec's logs) from `target`, output to
// `sink`; the result the stream ends with, if it does. Errors as call_daemon.
std::optional<engine::RunResult> follow_via_daemon(const std::string& socket_path, const std::string& target,
                                                   engine::OutputSink& sink,
                                                   const engine::CancelToken& cancel);

// One request and its JSON answer (GET: an empty body). Throws
// Error(unavailable) saying how to start airlockd when none answers, and the
// status's Error for an error answer.
nlohmann::json call_daemon(const std::string& socket_path, const std::string& method,
                           const std::string& target, const std::string& body = {});

// The same for an answer that is raw bytes (a file): its body.
std::string exchange_with_daemon(const std::string& socket_path, const std::string& method,
                                 const std::string& target, const std::string& body = {});

// A request's body: `text`, or when `fd` is set, `fd_size` bytes read from
// it after `text` (a file, streamed), or when `produce` is set, what it
// hands its writer (chunked: a body whose size is not known before it is
// made). The writer returns false once the daemon stopped reading.
using BodyWriter = std::function<bool(std::string_view)>;
struct RequestBody {
  std::string text;
  int fd = -1;
  uint64_t fd_size = 0;
  std::function<void(const BodyWriter&)> produce;
};
// One request whose answer's body goes to `on_body` as it arrives (a
// streamed download in pieces, any other whole). Errors as call_daemon.
void transfer_with_daemon(const std::string& socket_path, const std::string& method,
                          const std::string& target, const RequestBody& body,
                          const std::function<void(std::string_view)>& on_body);

// `text` for a query string: everything but letters, digits and -_.~/ as %XX.
std::string percent_encode(const std::string& text);

}  // namespace airlock::cli
