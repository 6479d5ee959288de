#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "engine/code_context.h"
#include "engine/engine.h"
#include "engine/exec_record.h"
#include "engine/mux_archive.h"
#include "engine/mux_files.h"
#include "engine/snapshot_store.h"
#include "engine/vm_budget.h"

namespace airlock::engine {

// A sandbox lives from create to destroy and serves many execs, several at
// once. It is busy while an exec or a file transfer is in progress, else
// ready. Its states, and what each operation accepts:
//   creating -> ready <-> busy -> stopped;  ready/busy <-> paused -> stopped
//   exec, files, signal, stdin, ports: ready, busy (409 when paused or stopped)
//   snapshot, fork, pause: ready, busy    resume: paused (and, doing nothing, ready, busy)
//   touch: ready, busy, paused    destroy: any
//   info, list, logs: any, and never extend its life
// A sandbox whose VM dies, or whose ttl or idle timeout passes, is stopped
// with the reason, and its operations fail with it. Paused time counts
// toward the ttl, not toward the idle timeout.
enum class SandboxState { creating, ready, busy, paused, stopped };
std::string_view to_string(SandboxState state);

struct SandboxLimits {
  static constexpr int kDefaultTtlS = 3600;
  static constexpr int kMaxTtlS = 86400;
  static constexpr int kDefaultIdleTimeoutS = 300;
  static constexpr int kDefaultExecTimeoutS = 30;
  static constexpr int kMaxExecTimeoutS = 3600;
  static constexpr size_t kMaxArgs = 4096;
  static constexpr size_t kMaxArgvBytes = 1 << 20;
};

// What a sandbox is made of: the profile and per-exec limits of a run
// request (its code unused), and its two lifetimes.
struct SandboxSpec {
  RunPlan plan;
  int ttl_s = SandboxLimits::kDefaultTtlS;                   // from creation
  int idle_timeout_s = SandboxLimits::kDefaultIdleTimeoutS;  // since the last exec, touch or file operation
};
// Throws Error(invalid_argument) naming the lifetime that is out of range.
void validate(const SandboxSpec& spec);

// One command in a sandbox: as the sandbox user, in `cwd`.
struct ExecRequest {
  std::vector<std::string> argv;
  std::vector<std::pair<std::string, std::string>> env;
  std::string cwd = kWorkDir;
  // The exec's own; 0 (a background exec's default): none, it lasts as
  // long as its sandbox.
  int timeout_s = SandboxLimits::kDefaultExecTimeoutS;
  uint64_t stdout_limit = Limits::kDefaultStdoutLimit;
  uint64_t stderr_limit = Limits::kDefaultStderrLimit;
  std::string stdin_data;
  // Stdin stays open after stdin_data, for more while it runs.
  bool stdin_open = false;
  // The caller does not wait: it gets the exec's id, and its output is kept
  // (the last 1 MiB per stream) for `logs`.
  bool background = false;
  // A terminal (rows x cols) instead of pipes: its output is all stdout.
  bool tty = false;
  int rows = 24;
  int cols = 80;

  // What a one-shot run (Engine::run) adds; never set through the API.
  // Its code, written on the exec's stream just before the exec itself.
  std::optional<ExecFile> program_file;
  // The program may go to the interpreter the guest holds prestarted (if it
  // still holds one: the first such exec takes it).
  bool may_use_prestarted = false;
  // A host fd streamed to stdin, after stdin_data, as the program reads it
  // (the CLI's own stdin); -1: none.
  int stdin_fd = -1;
};
// Throws Error(invalid_argument) naming the first field that is wrong.
void validate(const ExecRequest& request);
// A file path of the API: absolute, normalised (no "..", no "//"), NUL-free,
// at most 4 KiB; a mode at most 0777. Throws Error(invalid_argument).
void validate_file_path(const std::string& path);
void validate_file_mode(uint32_t mode);

struct SandboxInfo {
  std::string id;
  SandboxState state = SandboxState::creating;
  std::string stop_reason;  // once stopped
  Profile profile;
  int ttl_s = 0;
  int idle_timeout_s = 0;
  int64_t created_at_ms = 0;    // Unix time
  int64_t expires_at_ms = 0;    // created + ttl
  int64_t idle_since_ms = 0;    // the last exec, touch or file operation (Unix time)
  std::string origin_snapshot;  // the user snapshot it was restored from, or empty
  int execs = 0;                // started so far
  int running_execs = 0;        // in progress now
  bool pool_hit = false;
};

// A port forward of a sandbox: 127.0.0.1:host_port on the host reaches
// guest_port on the guest's loopback.
struct PortInfo {
  uint16_t guest_port = 0;
  uint16_t host_port = 0;
  int connections = 0;  // open now
};

// An exec as the API shows it: what it runs, whether it ended, and how.
struct ExecInfo {
  std::string id;
  std::vector<std::string> argv;
  bool background = false;
  bool tty = false;
  bool running = true;
  int64_t started_at_ms = 0;
  std::optional<int64_t> ended_at_ms;
  // Once ended: its result, whose output is what was kept of it.
  std::optional<RunResult> result;
  // While it runs: the output kept so far (with_output only).
  std::string stdout_data;
  std::string stderr_data;
  uint64_t stdout_dropped = 0;  // older output no longer kept
  uint64_t stderr_dropped = 0;
};

// A guest for a new sandbox, and its room in the VM budget (held for the
// sandbox's life), from a warm pool or newly started.
struct AcquiredGuest {
  ReadyGuest guest;
  std::optional<VmBudget::Reservation> room;
  // Whatever else the front end reserved for the sandbox's life (its disk
  // budget): released when the sandbox stops.
  std::shared_ptr<void> reserved;
  // The user snapshot it was restored from (held: not deletable meanwhile).
  std::shared_ptr<SnapshotStore::Use> origin;
  bool pool_hit = false;
};

class LiveSandbox;

// Every live sandbox of one daemon, by id: creates them (within
// `max_sandboxes`), serves their operations, and destroys those whose ttl,
// idle timeout or VM ended (a thread of its own checks twice a second).
// Stopped ones stay listed, with their reason, for 10 minutes or until
// destroyed. Destroying the registry destroys every sandbox.
class SandboxRegistry {
 public:
  // A guest for a new sandbox, with its room in the budgets: taken from a
  // pool or started for `spec`, or, given `start`, made by it (a copy of a
  // snapshot) once the room is there.
  using GuestSource =
      std::function<AcquiredGuest(const SandboxSpec& spec, const std::function<ReadyGuest()>* start)>;

  // User snapshots live in `snapshot_dir` (SnapshotStore).
  SandboxRegistry(Engine& engine, GuestSource source, int max_sandboxes, const std::string& snapshot_dir);
  ~SandboxRegistry();
  SandboxRegistry(const SandboxRegistry&) = delete;
  SandboxRegistry& operator=(const SandboxRegistry&) = delete;

  // Throws Error(overloaded) when `max_sandboxes` are live, or what the source throws.
  SandboxInfo create(SandboxSpec spec);
  // Error(not_found) for an id that names no sandbox.
  SandboxInfo info(const std::string& id);
  std::vector<SandboxInfo> list();
  SandboxInfo touch(const std::string& id);
  // Stops (cancelling an exec in progress) and forgets the sandbox.
  SandboxInfo destroy(const std::string& id);
  // Runs an exec and waits for it: Error(conflict) once the sandbox is
  // stopped. The result is a run's.
  RunResult exec(const std::string& id, const ExecRequest& request, OutputSink* sink,
                 const CancelToken* cancel);
  // Starts a background exec; returns its id.
  std::string start_exec(const std::string& id, const ExecRequest& request);
  // The execs kept (running, and the newest ended); their output only with_output.
  std::vector<ExecInfo> execs(const std::string& id);
  ExecInfo exec_info(const std::string& id, const std::string& exec_id, bool with_output);
  // Hands an exec's output to `sink` from the start of what is kept; with
  // `follow`, also what comes until it ends (or `cancel`). Returns its info
  // then (without output).
  // `on_dropped`: that many pieces of output were gone before they could be read.
  ExecInfo read_exec_output(const std::string& id, const std::string& exec_id, bool follow, OutputSink& sink,
                            const std::function<void(uint64_t)>& on_dropped, const CancelToken* cancel);
  void signal_exec(const std::string& id, const std::string& exec_id, int number);
  void write_exec_stdin(const std::string& id, const std::string& exec_id, std::string_view bytes,
                        bool close);
  // A tty exec's new terminal size; Error(conflict) for one without a terminal.
  void resize_exec(const std::string& id, const std::string& exec_id, int rows, int cols);
  // Port forwards (PortForward): Error(conflict) for a port forwarded
  // already, Error(overloaded) past kMaxPorts, Error(not_found) to close one
  // that is not. They close with the sandbox.
  PortInfo forward_port(const std::string& id, int guest_port);
  std::vector<PortInfo> ports(const std::string& id);
  void close_port(const std::string& id, int guest_port);
  // Error(conflict) with the state and its reason once the sandbox is stopped.
  void expect_live(const std::string& id);
  // Files of a sandbox, as its user (mux_files.h), beside its execs; each
  // counts as activity. `path`: absolute, normalised, in the guest.
  void upload(const std::string& id, const std::string& path, uint64_t size, uint32_t mode,
              const ContentReader& read);
  protocol::FileEnd download(const std::string& id, const std::string& path, uint64_t max_bytes,
                             const std::function<bool(std::string_view)>& on_data);
  // A directory's entries (`path` may be "/"), and removing a file or an empty directory.
  DirectoryListing list(const std::string& id, const std::string& path, uint64_t max_entries);
  void remove(const std::string& id, const std::string& path);
  // A path described as it is (`path` may be "/").
  protocol::DirEntry stat(const std::string& id, const std::string& path);
  // Directories as tar streams (mux_archive.h): extracted under
  // `directory` (may be "/"), or packed from `path` (may be "/").
  ArchiveCounts upload_archive(const std::string& id, const std::string& directory,
                               const ContentReader& read);
  ArchiveCounts download_archive(const std::string& id, const std::string& path,
                                 const std::function<bool(std::string_view)>& on_data);

  // Code contexts of a running sandbox (LiveSandbox::open_context): its
  // guest answers; Error(not_found) for a name that names none.
  ContextInfo open_context(const std::string& id, const ContextRequest& request);
  std::vector<ContextInfo> contexts(const std::string& id);
  ContextInfo context(const std::string& id, const std::string& name);
  ContextInfo control_context(const std::string& id, const std::string& name, const std::string& action);
  CodeResult run_code(const std::string& id, const std::string& name, const CodeRequest& request,
                      CodeEventSink* sink, const CancelToken* cancel);

  // Pause and resume (LiveSandbox::pause): the sandbox as it is then.
  SandboxInfo pause(const std::string& id);
  SandboxInfo resume(const std::string& id);
  // A user snapshot of a live sandbox (sandbox_snapshots.cc); `name` empty:
  // its id. Error(conflict) for a paused or stopped sandbox or a name taken,
  // Error(no_space) when the store's disk cannot hold it (nothing is left).
  SnapshotMeta snapshot(const std::string& id, const std::string& name,
                        const std::map<std::string, std::string>& labels);
  std::vector<SnapshotMeta> snapshots();
  SnapshotMeta snapshot_info(const std::string& id_or_name);
  // Every file digested again (SnapshotStore::check): Error(conflict) naming what is wrong.
  SnapshotMeta verify_snapshot(const std::string& id_or_name);
  // Error(conflict) while a sandbox made from it lives.
  SnapshotMeta remove_snapshot(const std::string& id_or_name);
  // A new sandbox that goes on from a snapshot; ttl_s, idle_timeout_s 0: the source's.
  SandboxInfo restore(const std::string& snapshot, int ttl_s, int idle_timeout_s);
  static constexpr int kMaxForks = 64;
  // `count` (1-kMaxForks) new sandboxes, each a copy of the live sandbox
  // `id` as it is now: one answer per copy, its sandbox or its own error.
  struct ForkCopy {
    std::optional<SandboxInfo> sandbox;
    std::optional<Error> error;
  };
  std::vector<ForkCopy> fork(const std::string& id, int count);

  struct Counts {
    int live = 0;
    int max = 0;
  };
  Counts counts();

 private:
  std::shared_ptr<LiveSandbox> find(const std::string& id);
  // Admits a new sandbox (within max_sandboxes, listed as creating meanwhile) and makes it.
  SandboxInfo admit(SandboxSpec spec, const std::function<AcquiredGuest(const SandboxSpec&)>& acquire);
  SnapshotMeta take_snapshot(const std::string& id, const std::string& name,
                             const std::map<std::string, std::string>& labels, bool ephemeral);
  SandboxInfo restore_from(const std::shared_ptr<SnapshotStore::Use>& use, int ttl_s, int idle_timeout_s);
  // Rewrites a draft's RAM into a file copies map (Engine::bake_memory), if it can.
  void bake_memory(const SandboxSpec& spec, SnapshotStore::Draft& draft, SnapshotMeta& meta);
  void reap_loop();

  Engine& engine_;
  GuestSource source_;
  const int max_sandboxes_;
  std::mutex mutex_;
  std::map<std::string, std::shared_ptr<LiveSandbox>> sandboxes_;
  // Under mutex_: creates admitted and not done yet, listed as `creating`;
  // any operation on one but a read of its state is a 409 until it is ready.
  std::map<std::string, SandboxInfo> creating_;
  SnapshotStore snapshots_;
  std::condition_variable stop_wake_;
  bool stopping_ = false;
  std::thread reaper_;
};

// 128 random bits as "sb-" and 32 hex digits: unguessable, so an id is a capability.
std::string new_sandbox_id();

}  // namespace airlock::engine
