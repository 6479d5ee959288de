#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

namespace airlock::engine {

// Every run ends in exactly one of these.
enum class RunStatus {
  ok,              // exited with code 0
  error,           // exited with a non-zero code
  timeout,         // killed at the time limit
  oom,             // killed by the guest's out-of-memory killer
  output_limit,    // killed for passing the stdout or stderr limit
  killed,          // ended by a signal (its own doing, or cancelled by the caller)
  internal_error,  // Airlock could not run it: VM failure, protocol violation
};

std::string_view to_string(RunStatus status);

// Where one run's time went, in microseconds (docs/api.yaml `trace_us`):
// on the host, accepted -> the exec begun (a VM taken or started, its
// sandbox made), the exec begun -> its exit report in (the code file and
// the exec sent, the guest's work, the way back), the report in -> the
// result; in the guest, by its clock, the exec frame taken -> the program
// started or handed to the prestarted interpreter, -> its exit known, ->
// the report sent (its output drained, its processes killed).
struct RunTrace {
  int64_t acquire_us = 0;
  int64_t exec_us = 0;
  int64_t finish_us = 0;
  int64_t guest_start_us = 0;
  int64_t guest_run_us = 0;
  int64_t guest_end_us = 0;
};

struct RunTiming {
  int64_t setup_ms = 0;    // request accepted -> VM process started
  int64_t boot_ms = 0;     // VM process started -> agent ready
  int64_t execute_ms = 0;  // program started -> program ended
  int64_t total_ms = 0;    // request accepted -> everything torn down
  // Once the guest reported; an exec in a sandbox has no acquire or finish.
  std::optional<RunTrace> trace;
};

struct RunResult {
  RunStatus status = RunStatus::internal_error;
  std::optional<int> exit_code;
  std::optional<int> signal;
  std::string stdout_data;
  std::string stderr_data;
  bool stdout_truncated = false;
  bool stderr_truncated = false;
  RunTiming timing;
  std::string accel;
  bool from_snapshot = false;  // restored from a template rather than booted
  bool pool_hit = false;       // the VM came ready from a warm pool
  std::string error;           // what went wrong, for timeout / internal_error / killed
  // Connections the network filter refused during the run, with reasons.
  std::vector<std::string> network_denied;
};

// Output bytes as the API carries them, exactly: the bytes themselves
// (`"utf-8"`) when they are valid UTF-8 and escaping them as a JSON string at
// most doubles them (any text: newlines, tabs and quotes cost 2), else their
// base64 (`"base64"`). Either way what is sent is at most twice the bytes
// (+4): output made of control bytes (6 each when escaped) cannot blow a
// response up.
struct EncodedOutput {
  std::string data;
  const char* encoding;
};
EncodedOutput encode_output(std::string bytes);

// The `--json` / API form; output as encode_output says. Takes the result by
// value: a caller done with it moves it in, and its output is not copied.
nlohmann::json to_json(RunResult result);
// to_json() as text, the output encoded straight into it: what a response
// carries is built with the output in memory twice at most (as kept, and as
// sent), not three times (kept, a JSON value, its text).
std::string to_json_text(RunResult result);

// The CLI's exit code for a result: the program's own code; 128+signal when
// killed by a signal; 124 timeout; 137 oom; 125 output_limit / internal_error.
int exit_code_for(const RunResult& result);

// The inverse of to_json, for clients of the daemon's API. Throws
// Error(protocol) if the object is not a run result.
RunResult result_from_json(const nlohmann::json& object);

std::string base64_decode(std::string_view text);

std::string base64_encode(std::string_view bytes);

}  // namespace airlock::engine
