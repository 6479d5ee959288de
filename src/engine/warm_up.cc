#include "engine/warm_up.h"

#include <chrono>

#include "common/error.h"
#include "engine/engine.h"
#include "engine/paths.h"

namespace airlock::engine {

// An exec of Airlock's own code (warm-up, prestarted interpreter) as the sandbox user.
protocol::Exec own_exec(const Language& language, const std::vector<std::string>& argv) {
  protocol::Exec exec;
  exec.argv = argv;
  exec.env = guest_environment(language, {});
  exec.cwd = kWorkDir;
  exec.uid = kSandboxUid;
  exec.gid = kSandboxUid;
  exec.timeout_ms = 60'000;
  return exec;
}

void run_warmup(GuestSession& session, const Language& language) {
  // Generous: go's warm-up builds a program under emulation.
  ExecOutcome outcome =
      session.execute(own_exec(language, language.warmup), "", nullptr, std::chrono::seconds(180));
  if (!outcome.report || outcome.report->exit_code != 0) {
    throw Error(ErrorCode::vm, "the " + language.name + " warm-up failed: " +
                                   (outcome.failure.empty() ? outcome.stderr_data : outcome.failure));
  }
}

// Takes a clone's exec path once with a large message and stdin, before the
// clone is handed out: the emulator translates per QEMU process, and a clone
// of the template has translated none of what a request's bytes go through
// (the agent's frame reading and JSON parsing of a big exec, its stdin
// feeding, the kernel's pipe writes) nor touched the pages they use. Measured
// under TCG: print(1) with 1 byte of stdin 33 -> 20 ms, with 20 KiB 43 -> 21 ms
// (docs/performance.md). cat echoes its stdin, so output forwarding is taken too.
void warm_exec_path(GuestSession& session, const Language& language) {
  protocol::Exec exec = own_exec(language, {"/bin/cat"});
  exec.env.push_back("AIRLOCK_WARM=" + std::string(16 * 1024, 'w'));
  // The default disk budget is set now, as a run would set it (statfs and
  // ext4's reserved_clusters: cold kernel paths, milliseconds under TCG);
  // a run that asks for the same finds it set, one that asks for another
  // sets its own.
  exec.disk_limit_bytes = static_cast<uint64_t>(Limits::kDefaultDiskMb) << 20;
  const std::string input(32 * 1024, 'x');
  ExecOutcome outcome = session.execute(exec, input, nullptr, std::chrono::seconds(60));
  if (!outcome.report || outcome.report->exit_code != 0) {
    throw Error(ErrorCode::vm, "warming the exec path of a " + language.name + " guest failed: " +
                                   (outcome.failure.empty() ? outcome.stderr_data : outcome.failure));
  }
}

void start_prestarted(GuestSession& session, const Language& language, const std::vector<std::string>& argv) {
  protocol::Exec interpreter = own_exec(language, argv);
  interpreter.env.insert(interpreter.env.end(), language.prestart_env.begin(), language.prestart_env.end());
  interpreter.job_format = language.job_format;
  if (!language.prestart_file.empty()) session.queue_file(language.code_path, language.prestart_file, 0644);
  // Generous: an image's preloads (python-data's pandas, matplotlib) take
  // seconds to import under emulation.
  session.prestart(interpreter, SteadyClock::now() + std::chrono::seconds(180));
}

// Runs our warm-up program through the prestarted interpreter, which stays
// waiting. The agent removes the code file after it; nothing else is left.
void warm_prestarted(GuestSession& session, const Language& language) {
  session.queue_file(language.code_path, language.warmup_program, 0644);
  session.warm(own_exec(language, language.command), SteadyClock::now() + std::chrono::seconds(60));
}

}  // namespace airlock::engine
