#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "common/error.h"
#include "engine/code_context.h"
#include "engine/exec_record.h"
#include "engine/guest_mux.h"
#include "engine/mux_archive.h"
#include "engine/mux_files.h"
#include "engine/port_forward.h"
#include "engine/sandbox.h"

namespace airlock::engine {

// One sandbox of a SandboxRegistry: its VM, whose channel a GuestMux serves,
// and its execs, any number at once, each on a stream of its own. It is busy
// while an exec or a file transfer is in progress, else ready. Stopping it
// ends every exec (as killed, with the reason) and destroys the VM.
class LiveSandbox {
 public:
  static constexpr int kMaxRunningExecs = 128;
  // Ended execs kept to be looked at (the newest), each with the last
  // kKeptOutput bytes of its streams.
  static constexpr size_t kKeptEndedExecs = 16;
  static constexpr uint64_t kKeptOutput = 1 << 20;

  LiveSandbox(std::string id, SandboxSpec spec, AcquiredGuest acquired);
  ~LiveSandbox();
  LiveSandbox(const LiveSandbox&) = delete;
  LiveSandbox& operator=(const LiveSandbox&) = delete;

  SandboxInfo info() const;
  // The result of an ended exec as run_exec gives it (its output: what was kept).
  RunResult result_of(ExecRecord& record) const;
  // Error(conflict) with the state and its reason unless it can take an exec now.
  void expect_live() const;
  void touch();

  // Starts an exec; Error(conflict) once stopped, Error(overloaded) past
  // kMaxRunningExecs.
  std::shared_ptr<ExecRecord> start_exec(const ExecRequest& request);
  // Starts an exec and follows it to its end (its own timeout, or `cancel`).
  RunResult run_exec(const ExecRequest& request, OutputSink* sink, const CancelToken* cancel);
  // Error(not_found) for an id that names no exec kept.
  std::shared_ptr<ExecRecord> find_exec(const std::string& exec_id) const;
  std::vector<std::shared_ptr<ExecRecord>> execs() const;
  void signal_exec(const std::string& exec_id, int number);
  void resize_exec(const std::string& exec_id, int rows, int cols);
  void write_exec_stdin(const std::string& exec_id, std::string_view bytes, bool close);

  void upload(const std::string& path, uint64_t size, uint32_t mode, const ContentReader& read);
  protocol::FileEnd download(const std::string& path, uint64_t max_bytes,
                             const std::function<bool(std::string_view)>& on_data);
  DirectoryListing list(const std::string& path, uint64_t max_entries);
  protocol::DirEntry stat(const std::string& path);
  ArchiveCounts upload_archive(const std::string& directory, const ContentReader& read);
  ArchiveCounts download_archive(const std::string& path,
                                 const std::function<bool(std::string_view)>& on_data);

  static constexpr size_t kMaxPorts = 16;
  PortInfo forward_port(uint16_t guest_port);
  std::vector<PortInfo> ports() const;
  void close_port(uint16_t guest_port);
  void remove(const std::string& path);

  // Its code contexts (live_contexts.cc): the guest holds them; each call
  // asks it, while the sandbox runs (Error(conflict) otherwise), and counts
  // as activity (a cell in progress makes the sandbox busy).
  ContextInfo open_context(const ContextRequest& request);
  std::vector<ContextInfo> contexts();
  ContextInfo context(const std::string& name);  // Error(not_found) for none
  // interrupt, restart or stop.
  ContextInfo control_context(const std::string& name, const std::string& action);
  CodeResult run_code(const std::string& name, const CodeRequest& request, CodeEventSink* sink,
                      const CancelToken* cancel);

  // Stops its vCPUs, its memory kept (Error(conflict) once stopped); a
  // paused one answers only info, touch, resume and destroy. Idempotent.
  void pause();
  // Lets it run again (its clock is set: it stood still meanwhile).
  void resume();
  // What snapshot_into made.
  struct TakenSnapshot {
    vmm::LiveSnapshotTiming timing;
    bool named_memory = true;  // SnapshotMeta::named_memory
    std::string disk_backing;  // the file the copied disk layer names as its backing
  };
  // Saves its RAM, devices and disk, consistent with each other, to
  // `state_path` and `disk_path` while it runs (quiesced: paused only for
  // the last pages); its execs go on. Error(conflict) when paused, stopped,
  // or with mounts (a mounted 9p share does not migrate).
  TakenSnapshot snapshot_into(const std::string& state_path, const std::string& disk_path);
  // The user snapshot it was restored from, if it was.
  std::shared_ptr<SnapshotStore::Use> origin() const;
  const SandboxSpec& spec() const { return spec_; }

  // Stops it (every exec in progress is killed) and destroys its VM.
  void stop(const std::string& reason);
  // The same, but hands its VM to the caller (to be destroyed off the
  // caller's path) instead; nullopt if it had stopped already.
  std::optional<ReadyGuest> stop_keeping_vm(const std::string& reason);
  // Why it must stop now, if it must (ttl, idle timeout, its VM ended); on
  // the way, ends background execs past their own timeout.
  std::optional<std::string> due();
  bool forgettable() const;
  bool live() const;

 private:
  // What a stopped sandbox leaves to destroy, in this order (the VM first,
  // then its room in the budgets: members go in reverse order).
  struct Remains {
    std::shared_ptr<SnapshotStore::Use> origin;
    std::shared_ptr<void> reserved;
    std::optional<VmBudget::Reservation> room;
    std::optional<ReadyGuest> guest;
  };
  Remains halt(const std::string& reason);
  std::string state_message() const;
  SandboxState state_locked() const;
  std::shared_ptr<GuestMux> live_mux() const;
  // Keeps the newest kKeptEndedExecs ended ones.
  void forget_old_execs_locked();
  // Runs `step` with the mux of a running sandbox (Error(conflict)
  // otherwise), which is busy meanwhile (a file transfer, a cell).
  template <typename Step>
  auto operation(Step&& step);

  const std::string id_;
  const SandboxSpec spec_;
  const bool pool_hit_;
  const std::chrono::system_clock::time_point created_ = std::chrono::system_clock::now();
  mutable std::mutex mutex_;
  bool stopped_ = false;
  std::string stop_reason_;
  std::chrono::system_clock::time_point idle_since_ = std::chrono::system_clock::now();
  std::chrono::system_clock::time_point stopped_at_;
  int exec_count_ = 0;
  int operations_ = 0;                                     // file transfers and cells in progress
  std::map<uint64_t, std::shared_ptr<ExecRecord>> execs_;  // by number, oldest first
  uint64_t next_exec_ = 1;
  std::optional<ReadyGuest> guest_;
  bool prestarted_waiting_ = false;  // the guest still holds its prestarted interpreter
  const vmm::Accel accel_;
  const bool from_snapshot_;
  std::shared_ptr<GuestMux> mux_;
  std::map<uint16_t, std::unique_ptr<PortForward>> ports_;
  std::optional<VmBudget::Reservation> room_;
  std::shared_ptr<void> reserved_;
  // Held until it stops (a stopped sandbox stays listed, not using it).
  std::shared_ptr<SnapshotStore::Use> origin_;
  const std::string origin_id_;
  // Held by pause, resume and snapshots, and by halt(): the VM is not
  // destroyed while one of them talks to it.
  std::mutex control_mutex_;
  bool paused_ = false;
  std::chrono::system_clock::time_point paused_at_;
  SteadyClock::duration paused_total_{};  // over its life so far, the current pause excluded
};

template <typename Step>
auto LiveSandbox::operation(Step&& step) {
  std::shared_ptr<GuestMux> mux;
  {
    std::lock_guard lock(mutex_);
    if (stopped_ || paused_ || !mux_) throw Error(ErrorCode::conflict, state_message());
    ++operations_;
    idle_since_ = std::chrono::system_clock::now();
    mux = mux_;
  }
  struct Done {
    LiveSandbox& sandbox;
    ~Done() {
      std::lock_guard lock(sandbox.mutex_);
      --sandbox.operations_;
      sandbox.idle_since_ = std::chrono::system_clock::now();
    }
  } done{*this};
  if constexpr (std::is_invocable_v<Step, GuestMux&>) {
    return step(*mux);
  } else {
    return step(mux);
  }
}

}  // namespace airlock::engine
