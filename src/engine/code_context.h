#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "engine/guest_mux.h"
#include "engine/guest_session.h"
#include "protocol/context_messages.h"

namespace airlock::engine {

// Code contexts (docs/snapshots.md, "Code contexts"): interpreters that a
// sandbox's agent keeps running, each keeping its variables between the
// cells of code it is given. The guest holds them (so a snapshot holds
// them too); the host asks it.

struct ContextRequest {
  std::string name;      // empty: one is made up ("ctx-" and 8 hex digits)
  std::string language;  // python or javascript; empty: the sandbox's (python for shell)
};
// Error(invalid_argument) naming the field that is wrong.
ContextRequest context_request_from_json(const nlohmann::json& document);
// [A-Za-z0-9][A-Za-z0-9_.-]{0,63}, or Error(invalid_argument).
void validate_context_name(const std::string& name);
// "python" or "javascript" for a language name or alias, or Error(invalid_argument).
std::string context_language(const std::string& name);

struct ContextInfo {
  std::string name;
  std::string language;
  std::string state;  // starting, idle, busy, dead (its interpreter ended), stopped
  uint64_t execution_count = 0;
  int64_t pid = 0;
  int64_t started_at_ms = 0;
  std::string reason;  // why it is dead
};
nlohmann::json to_json(const ContextInfo& info);
ContextInfo context_info(const protocol::ContextInfo& guest);

struct CodeRequest {
  std::string code;
  int timeout_s = 30;  // 0: none
  uint64_t stdout_limit = 1 << 20;
  uint64_t stderr_limit = 1 << 20;
};
// Error(invalid_argument) naming the field that is wrong.
CodeRequest code_request_from_json(const nlohmann::json& document);

// What one cell's values and displays (images, JSON) may hold on the host.
inline constexpr size_t kMaxCellEventBytes = 16 << 20;

struct CodeError {
  std::string name;
  std::string value;
  std::vector<std::string> traceback;
};

// A cell's outcome: what it printed, the value of its last expression (a
// MIME bundle: "text/plain" always), what it displayed, and its error. An
// error of the user's code is a result (status "error"), never an API error.
struct CodeResult {
  std::string context;
  std::string status;  // ok, error, interrupted, timeout, died
  uint64_t execution_count = 0;
  double duration_ms = 0;  // in the guest
  std::string stdout_text;
  std::string stderr_text;
  bool stdout_truncated = false;
  bool stderr_truncated = false;
  // Values and displays past kMaxCellEventBytes were dropped.
  bool events_truncated = false;
  std::optional<nlohmann::json> result;
  std::vector<nlohmann::json> displays;
  std::optional<CodeError> error;
  std::string reason;  // for died and timeout: what happened to the interpreter
};
nlohmann::json to_json(const CodeResult& result);

// The events of a cell, as they come: {"type": "stdout"|"stderr", "text"},
// {"type": "result"|"display", "data"}, {"type": "error", "name", "value",
// "traceback"}. Called on the caller's thread.
class CodeEventSink {
 public:
  virtual ~CodeEventSink() = default;
  virtual void on_event(const nlohmann::json& event) = 0;
};

// What the guest's agent does with contexts, over a sandbox's mux. Errors
// the guest answers come back as Error(not_found) for a context that is not
// there and Error(conflict) otherwise (busy, dead, one too many).
class ContextClient {
 public:
  explicit ContextClient(std::shared_ptr<GuestMux> mux) : mux_(std::move(mux)) {}
  ContextInfo start(const std::string& name, const std::string& language, protocol::Exec exec);
  // action: interrupt, restart, stop; list (name ignored) gives every context.
  std::vector<ContextInfo> control(const std::string& name, const std::string& action);
  // Runs one cell; `cancel` (the caller hung up) interrupts it, and the
  // answer is given up at once. While `paused()` says so, the cell's time
  // stands still (the guest's clock does).
  CodeResult run(const std::string& name, const CodeRequest& request, CodeEventSink* sink,
                 const CancelToken* cancel, const std::function<bool()>& paused);

 private:
  std::shared_ptr<GuestMux> mux_;
};

// The interpreter's argv that runs our side of a context (repl/context.py, context.js).
std::vector<std::string> context_command(const std::string& language);

}  // namespace airlock::engine
