#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>

#include "common/temp_dir.h"
#include "engine/guest_mux.h"
#include "engine/guest_session.h"
#include "engine/images.h"
#include "engine/languages.h"
#include "engine/lasting_threads.h"
#include "engine/run_request.h"
#include "engine/run_result.h"
#include "engine/template_store.h"
#include "network/guest_network.h"
#include "network/policy.h"
#include "vmm/accel_probe.h"
#include "vmm/jail/jail.h"
#include "vmm/vm_backend.h"

namespace airlock::engine {

struct EngineOptions {
  std::string manifest_path;  // empty: find_manifest's search
  std::string cache_dir;      // empty: default_cache_dir()
  std::string runtime_dir;    // empty: default_runtime_dir()
  std::string snapshot_dir;   // user snapshots; empty: <cache_dir>/snapshots
  // One-line notices for the user (e.g. falling back from KVM to TCG).
  std::function<void(const std::string&)> notice;
  // Run even if this host cannot apply every confinement layer to QEMU
  // (vmm/jail); the missing ones are reported and skipped. Without it such a
  // host refuses every run with Error(unavailable).
  bool allow_weak_isolation = false;
  // Test hook: treat these layers as unavailable on this host.
  std::set<std::string> simulate_missing_layers;
  // Test-only name resolution for `allow:` networks (network::ResolverEntry):
  // lets tests reach local servers by name without the internet.
  network::ResolverMap test_resolver;
  // Whether `full` network (unfiltered: the host's LAN and cloud metadata
  // included) may be asked for. The CLI's user asks for herself; airlockd
  // serves others, and allows it only when its operator says so.
  bool allow_full_network = true;
  // Host directories runs may mount (--mount ro:HOST:GUEST) lie inside one
  // of these. nullopt: any directory (the CLI's user mounts her own files);
  // airlockd passes its operator's --mount-root list (none: no mounts).
  std::optional<std::vector<std::string>> mount_roots;
  // Host RAM the template snapshots' RAM files may take together (least
  // recently used ones are evicted past it, never one a VM maps). -1: a
  // quarter of the host's memory; 0: no budget.
  int64_t template_memory_budget_mb = -1;
};

// What a VM is made for. Runs with equal profiles can use each other's
// warm VMs; a pool is keyed by one.
struct Profile {
  std::string language;  // canonical name
  std::string image;     // ImageCatalog's; empty: the language's own (named like it)
  int memory_mb = Limits::kDefaultMemoryMb;
  int cpus = 1;
  std::string kernel;  // empty: the manifest's default
  vmm::AccelChoice accel = vmm::AccelChoice::automatic;
  bool use_snapshot = true;
  std::string network = "none";   // canonical NetworkPolicy::to_string()
  std::vector<MountSpec> mounts;  // host paths resolved (no symlinks), sorted by guest path
  // "python-256m", "python-512m-2cpu", "python-256m-net-full", "python-256m-net-3f2a9c01",
  // "python-256m-mnt-0c1d2e3f"
  std::string name() const;
  // The same for its template snapshot, which depends only on what the guest
  // sees: mounts count by their guest paths (the host directory is QEMU's
  // command line, not saved state), so shares of other directories at the
  // same places use one template.
  std::string template_name() const;
  // The image this profile's guests boot: `image`, or the language's own.
  const std::string& image_name() const { return image.empty() ? language : image; }

 private:
  std::string name_with(const std::string& mounts_key) const;
};
// Where a program runs in the guest, and as whom.
inline constexpr uint32_t kSandboxUid = 1000;
inline constexpr const char* kWorkDir = "/home/sandbox";

// The environment a program in the guest gets: ours (PATH, HOME, USER,
// LANG), then the language's, then `extra`, each overriding the one before.
std::vector<std::string> guest_environment(const Language& language,
                                           const std::vector<std::pair<std::string, std::string>>& extra);

// An exec of the caller's program as the sandbox user: `limits` gives the
// per-program bounds (pids, open files, disk), the rest is the exec's own.
protocol::Exec program_exec(const Language& language, const RunRequest& limits, std::vector<std::string> argv,
                            const std::vector<std::pair<std::string, std::string>>& env, std::string cwd,
                            uint64_t stdout_limit, uint64_t stderr_limit, int timeout_s);

// The request's profile, its mounts as they are in it (Engine::plan resolves them first).
Profile profile_of(const RunRequest& request);

// A request checked once (Engine::plan) and the profile it runs in: what
// every later step takes, so nothing validates or derives it again.
struct RunPlan {
  RunRequest request;  // its mounts' host paths resolved and inside the operator's roots
  Profile profile;
};

// A guest that has run nothing yet and will serve exactly one request.
// Destroying it destroys the VM and removes its run directory.
class ReadyGuest {
 public:
  ReadyGuest() = default;
  ReadyGuest(ReadyGuest&&) = default;
  ReadyGuest& operator=(ReadyGuest&&) = default;
  ~ReadyGuest();

  GuestSession& session() { return *session_; }
  vmm::Vm& vm() { return *vm_; }
  // Hands the guest's channel over from its session to a mux that serves
  // many streams at once (a sandbox's); the session is not used again. The
  // mux must be shut down before this guest is destroyed.
  std::shared_ptr<GuestMux> multiplex();
  bool from_snapshot() const { return from_snapshot_; }
  // An interpreter waits in the guest for the program (snapshotted or pool-started).
  bool has_prestarted() const { return prestarted_; }
  vmm::Accel accel() const { return accel_; }
  const RunTiming& start_timing() const { return timing_; }
  // Becomes readable if the VM stops while it waits (e.g. in a pool).
  int exit_fd() const { return vm_ ? vm_->exit_fd() : -1; }
  // What the network filter refused so far (empty without a network).
  std::vector<std::string> network_denials() const {
    return network_ ? network_->denials() : std::vector<std::string>{};
  }

 private:
  friend class Engine;
  // Declaration order is destruction order reversed: session, VM, network,
  // directory, and last the template's RAM file (its lock keeps the template
  // from eviction while the VM maps it).
  UniqueFd template_memory_;
  TempDir run_dir_;
  std::unique_ptr<network::GuestNetwork> network_;
  std::unique_ptr<vmm::Vm> vm_;
  std::unique_ptr<GuestSession> session_;
  bool from_snapshot_ = false;
  bool prestarted_ = false;
  const Language* language_ = nullptr;
  vmm::Accel accel_ = vmm::Accel::tcg;
  RunTiming timing_;
};

// Where a copy of a live sandbox comes from: a user snapshot's files.
struct CopySource {
  std::string state;         // RAM and devices (a migration stream)
  std::string disk;          // its disk layer, a qcow2 over the layers below
  std::string empty_layer;   // an empty qcow2 over `disk`, made once beside it
  bool named_memory = true;  // SnapshotMeta::named_memory
  // Its RAM as a file, mapped copy-on-write as a template's is (the state
  // then holds only the devices); empty: the RAM is in the state.
  std::string memory;
};

// Runs requests, each in a fresh VM that is destroyed afterwards with all it
// used. Errors in the request itself throw Error(invalid_argument) before any
// VM starts; everything that happens after is reported in the RunResult.
class Engine {
 public:
  explicit Engine(EngineOptions options, std::unique_ptr<vmm::VmBackend> backend = nullptr);
  // Waits until every VM that served a request is destroyed.
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // `pooled`: a guest for this request's profile taken from a warm pool; without
  // one the engine starts a guest (a clone of the template, or a boot). The
  // guest serves the run as a sandbox that is never listed: one exec, then
  // the VM is retired (one_shot_run.cc). Thread-safe.
  RunResult run(const RunPlan& plan, OutputSink* sink = nullptr, const CancelToken* cancel = nullptr,
                std::optional<ReadyGuest> pooled = std::nullopt);
  // The same for a request not planned yet.
  RunResult run(const RunRequest& request, OutputSink* sink = nullptr, const CancelToken* cancel = nullptr,
                std::optional<ReadyGuest> pooled = std::nullopt) {
    return run(plan(request), sink, cancel, std::move(pooled));
  }

  // Checks a request once: its bounds (validate), its mounts against the
  // operator's roots (resolved once, here), and what this engine's options
  // allow; derives its profile. Throws Error(invalid_argument) naming what
  // is wrong, before any VM starts.
  RunPlan plan(RunRequest request) const;
  // The part of plan that completes a request's image (engine/images.h
  // choose_image): for a request read back from a snapshot's metadata.
  void choose_image(RunRequest& request) const;
  // Every image a request can name (ImageCatalog::all_images).
  std::vector<RootfsImage> images() const;

  // The accelerator runs with this choice use (probes KVM once if needed).
  vmm::Accel accelerator(vmm::AccelChoice choice);

  // The confinement layers and whether this host applies them (probed once, at construction).
  const std::vector<vmm::jail::LayerStatus>& isolation() const { return isolation_; }
  // Throws Error(unavailable) if a layer is missing and weaker isolation was not accepted.
  void require_isolation() const;

  // Runs the language's warm-up (our code) in a guest that waits in a pool:
  // a new QEMU process translates guest code from scratch, and this pays
  // that, and the first-touch copy-on-write faults, before a request comes.
  // The prestarted interpreter is left waiting. Throws Error on failure.
  // Also starts the language's pool interpreter (pool_prestart), if it has one.
  void warm_guest(ReadyGuest& guest);

  // Starts a guest for a profile, ready for one request. Throws Error on failure.
  // Its processes die with the calling thread (PR_SET_PDEATHSIG): for a
  // guest destroyed before that thread ends.
  ReadyGuest start_guest(const Profile& profile, const CancelToken* cancel = nullptr);
  // The same on one of the engine's own threads, for a guest that outlives
  // the caller's thread (a pool's, a sandbox's).
  ReadyGuest start_lasting_guest(const Profile& profile, const CancelToken* cancel = nullptr);

  // A VM that goes on from a user snapshot, on the engine's own threads (as
  // start_lasting_guest): the guest runs again as it was when the snapshot
  // was taken, with a fresh clock, RNG and identity (protocol::Resume).
  // Throws Error(vm) naming what failed.
  ReadyGuest start_copy(const Profile& profile, const CopySource& source,
                        const CancelToken* cancel = nullptr);
  // Rewrites a snapshot whose RAM is in its state (`source`, memory empty)
  // into `memory_path` (the RAM, a file a copy maps copy-on-write) and
  // `state_path` (the devices only): a VM loads the state, never runs, and
  // saves it again without its RAM. Copies then start as clones of a
  // template do. Throws Error(vm) naming what failed (nothing is left then
  // but what the caller's paths hold).
  void bake_memory(const Profile& profile, const CopySource& source, const std::string& memory_path,
                   const std::string& state_path);
  // Where user snapshots are kept (SnapshotStore).
  std::string snapshot_dir() const;

  // The template snapshots' RAM: how many, how much, the budget, evictions.
  TemplateStore::Stats template_stats() const { return templates_->stats(); }

 private:
  std::string template_name(const Language& language, const vmm::KernelImage& kernel,
                            const std::string& rootfs, vmm::Accel accel, const Profile& profile);
  // Finds or builds the template snapshot for a profile: boot, warm the
  // interpreter's files into the page cache, save. Throws if that fails.
  TemplatePaths ensure_template(const std::string& name, const Language& language,
                                const vmm::KernelImage& kernel, const std::string& rootfs, vmm::Accel accel,
                                const Profile& profile, const CancelToken* cancel);

  // The accelerator a run with this choice uses (probing if needed); called with state_mutex_ held.
  vmm::AccelDecision accel_for(vmm::AccelChoice choice, const vmm::KernelImage& kernel);
  struct Resolved {
    const Language* language;
    vmm::KernelImage kernel;
    std::string rootfs;
    vmm::AccelDecision accel;
  };
  Resolved resolve(const Profile& profile);
  // The VM of a copy of `source` (start_copy, bake_memory), in `work_dir`.
  vmm::VmConfig copy_config(const Resolved& resolved, const Profile& profile, const CopySource& source,
                            const std::string& work_dir) const;

  EngineOptions options_;
  // Guards the lazily loaded catalog, the languages as images run them and the accelerator verdict.
  mutable std::mutex state_mutex_;
  std::optional<TemplateStore> templates_;
  std::unique_ptr<vmm::VmBackend> backend_;
  mutable std::optional<ImageCatalog> catalog_;
  // The catalog, loaded on first use; with state_mutex_ held.
  const ImageCatalog& catalog_locked() const;
  // A language as an image runs it (its env after the image's), for our own
  // execs in its guests (warm-ups, prestarted interpreters): one per pair,
  // kept as long as the engine, so guests may point at it.
  std::map<std::string, std::unique_ptr<Language>> image_languages_;
  std::optional<vmm::AccelDecision> automatic_accel_;
  std::map<std::string, std::string> initramfs_digests_;  // file identity -> content hash
  std::vector<vmm::jail::LayerStatus> isolation_;
  std::set<std::string> skipped_layers_;  // missing and accepted as missing

  // VMs that served their request are destroyed here, off the request's
  // path: the caller has its result without waiting for QEMU's teardown.
  void retire(ReadyGuest guest);
  void retire_loop();
  std::mutex retire_mutex_;
  std::condition_variable retire_wake_;
  std::deque<ReadyGuest> retiring_;
  bool retire_stop_ = false;
  std::unique_ptr<LastingThreads> lasting_;
  std::thread retirer_;  // declared last: started after, and joined before, everything above
};

}  // namespace airlock::engine
