// A one-shot run is one case of a sandbox: a guest (from a pool, or started
// for it) becomes an unlisted LiveSandbox, serves one exec, and is retired.
// Runs and sandbox execs share one path to the guest: its mux and ExecRecord.

#include "common/error.h"
#include "engine/engine.h"
#include "engine/live_sandbox.h"

namespace airlock::engine {

namespace {

// Environment variables read only when an interpreter starts (PYTHONHASHSEED,
// NODE_OPTIONS, ...) cannot reach one that is running already: a run that
// sets one gets an interpreter of its own.
bool can_use_prestarted(const Language& language, const RunRequest& request) {
  if (request.fresh_interpreter) return false;
  for (const auto& [name, value] : request.env) {
    for (const auto& prefix : language.startup_env_prefixes) {
      if (name.rfind(prefix, 0) == 0) return false;
    }
  }
  return true;
}

// What went wrong before or around an exec: errors of the request or of this
// host (no images, KVM demanded but unusable) are the caller's to report;
// everything after is a result.
void classify_failure(const Error& e, RunResult& result) {
  if (e.code() == ErrorCode::invalid_argument || e.code() == ErrorCode::not_found ||
      e.code() == ErrorCode::unavailable) {
    throw;
  }
  if (e.code() == ErrorCode::cancelled) {
    result.status = RunStatus::killed;
    result.signal = 9;
  } else {
    result.status = RunStatus::internal_error;
  }
  result.error = e.what();
}

// The run's program as the exec of a sandbox: the language's command on the
// code file, written just before it, with the run's limits.
ExecRequest program_exec_request(const Language& language, const RunRequest& request) {
  ExecRequest exec;
  exec.argv = language.command;
  exec.env = request.env;
  exec.cwd = kWorkDir;
  exec.timeout_s = request.timeout_s;
  exec.stdout_limit = request.stdout_limit;
  exec.stderr_limit = request.stderr_limit;
  exec.stdin_data = request.stdin_source.data;
  exec.stdin_fd = request.stdin_source.fd;
  exec.program_file = ExecFile{language.code_path, request.code, 0644};
  exec.may_use_prestarted = can_use_prestarted(language, request);
  return exec;
}

// A sandbox's spec for one run: its profile and limits; the code and stdin
// travel in the exec, not here.
SandboxSpec one_run_spec(const RunPlan& plan) {
  SandboxSpec spec;
  spec.plan.profile = plan.profile;
  spec.plan.request = plan.request;
  spec.plan.request.code.clear();
  spec.plan.request.stdin_source = StdinSource{};
  // The exec's own timeout ends it; the sandbox never outlives its caller.
  spec.ttl_s = SandboxLimits::kMaxTtlS;
  spec.idle_timeout_s = SandboxLimits::kMaxTtlS;
  return spec;
}

}  // namespace

RunResult Engine::run(const RunPlan& plan, OutputSink* sink, const CancelToken* cancel,
                      std::optional<ReadyGuest> pooled) {
  const auto accepted = SteadyClock::now();
  const RunRequest& request = plan.request;
  const Language& language = find_language(request.language);

  RunResult result;
  std::optional<ReadyGuest> guest = std::move(pooled);
  const bool pool_hit = guest.has_value();
  std::unique_ptr<LiveSandbox> sandbox;
  try {
    if (!guest) guest.emplace(start_guest(plan.profile, cancel));
    RunTiming timing;
    if (!pool_hit) {
      timing = guest->start_timing();
    } else {
      timing.setup_ms = elapsed_ms(accepted, SteadyClock::now());
    }
    AcquiredGuest acquired;
    acquired.guest = std::move(*guest);
    acquired.pool_hit = pool_hit;
    guest.reset();
    sandbox = std::make_unique<LiveSandbox>("of a one-shot run", one_run_spec(plan), std::move(acquired));
    const auto exec_begun = SteadyClock::now();
    result = sandbox->run_exec(program_exec_request(language, request), sink, cancel);
    timing.execute_ms = result.timing.execute_ms;
    timing.trace = result.timing.trace;
    if (timing.trace) {
      timing.trace->acquire_us =
          std::chrono::duration_cast<std::chrono::microseconds>(exec_begun - accepted).count();
      timing.trace->finish_us =
          std::chrono::duration_cast<std::chrono::microseconds>(SteadyClock::now() - exec_begun).count() -
          timing.trace->exec_us;
    }
    result.timing = timing;
  } catch (const Error& e) {
    classify_failure(e, result);
  }
  result.pool_hit = pool_hit;
  // Single use: whatever ran in this VM, nobody gets it again. Its teardown
  // happens off the caller's path.
  if (sandbox) guest = sandbox->stop_keeping_vm("the run ended");
  if (guest) retire(std::move(*guest));
  guest.reset();
  if (result.accel.empty()) result.accel = "tcg";
  result.timing.total_ms = elapsed_ms(accepted, SteadyClock::now());
  return result;
}

}  // namespace airlock::engine
