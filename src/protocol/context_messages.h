#pragma once

// The messages of code contexts (docs/protocol.md, "Code contexts"): an
// interpreter the agent keeps running in a sandbox, which runs cells of
// code and keeps its variables between them.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/messages.h"

namespace airlock::protocol {

// Host -> guest (context_start): start a context; answered with a
// ContextList holding it once its interpreter is ready, or an error.
struct ContextStart {
  std::string context;   // its name, unique in the sandbox
  std::string language;  // reported back as given
  Exec exec;             // the interpreter: argv, env, cwd, user, limits
  std::string to_payload() const;
  static ContextStart parse(std::string_view payload);
};

// The most code one cell may hold (a frame carries it whole).
inline constexpr size_t kMaxCellCode = 192 * 1024;

// Host -> guest (context_run): run one cell; the stream then carries its
// output (stdout_data, stderr_data), its events (context_event) and last a
// context_done. timeout_ms 0: none.
struct ContextRun {
  std::string context;
  std::string code;
  uint64_t timeout_ms = 0;
  uint64_t stdout_limit = 1 << 20;
  uint64_t stderr_limit = 1 << 20;
  std::string to_payload() const;
  static ContextRun parse(std::string_view payload);
};

// Host -> guest (context_control): interrupt the running cell, restart the
// interpreter (its variables are lost), stop it, or list every context
// ("list": `context` is ignored). Answered with a ContextList.
struct ContextControl {
  std::string context;
  std::string action;  // interrupt, restart, stop, list
  std::string to_payload() const;
  static ContextControl parse(std::string_view payload);
};

struct ContextInfo {
  std::string context;
  std::string language;
  std::string state;  // starting, idle, busy, dead, stopped
  uint64_t execution_count = 0;
  int64_t pid = 0;
  int64_t started_at_ms = 0;  // the guest's clock
  std::string reason;         // why it is dead
};

// Guest -> host (context_info).
struct ContextList {
  std::vector<ContextInfo> contexts;
  std::string to_payload() const;
  static ContextList parse(std::string_view payload);
};

// Guest -> host (context_done): how a cell ended. status: ok, error,
// interrupted (by an interrupt), timeout (interrupted at its timeout), died
// (the interpreter ended: `reason` says how; the context is dead).
struct ContextDone {
  std::string status;
  uint64_t execution_count = 0;
  uint64_t duration_us = 0;
  bool stdout_truncated = false;
  bool stderr_truncated = false;
  std::string reason;
  std::string to_payload() const;
  static ContextDone parse(std::string_view payload);
};

}  // namespace airlock::protocol
