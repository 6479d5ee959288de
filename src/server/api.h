#pragma once

#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>

#include "common/clock.h"
#include "engine/engine.h"
#include "engine/sandbox.h"
#include "engine/vm_budget.h"
#include "engine/warm_pool.h"
#include "server/admission.h"
#include "server/http_server.h"
#include "server/metrics.h"

namespace airlock::server {

struct PoolLimits {
  int max_pools = 16;      // pools made with POST /v1/pools, at once
  int max_sandboxes = 32;  // live sandboxes (POST /v1/sandboxes), at once
  // A pool made with POST /v1/pools that no run has asked for in this long is removed.
  std::chrono::seconds idle_timeout{600};
  // How long a run waits for room in the VM budget (pooled VMs being started
  // become ready and give theirs up) before 429.
  std::chrono::seconds room_wait{10};
};

// What all runs in progress share (each is refused with 429 when its share
// does not fit): memory for output, disk for what programs write, and the
// VMs' memory and vCPUs (pooled VMs included).
struct Budgets {
  ByteBudget& output;
  ByteBudget& disk;
  engine::VmBudget& vms;
};

// The HTTP API of docs/api.yaml: parses a request into one engine call and
// maps the engine's typed errors to HTTP statuses in one table.
class Api {
 public:
  Api(engine::Engine& engine, Admission& admission, Budgets budgets, Metrics& metrics,
      const std::string& accel, PoolLimits pool_limits = {});
  ~Api();

  // What a run's output may cost this daemon's memory, at most (ByteBudget).
  static uint64_t output_cost(const engine::RunRequest& request, bool streaming);

  // The routes whose bodies stream (HttpServer::stream_bodies): file
  // uploads (up to kMaxUploadBytes) and an exec's stdin.
  static bool streams_body(const std::string& method, const std::string& target);
  static constexpr uint64_t kMaxUploadBytes = 1ULL << 30;

  // Creates (or resizes) the warm pool of a profile; such a pool never expires.
  void add_pool(const engine::Profile& profile, int target);
  void handle(const HttpRequest& request, ResponseWriter& writer);
  // Destroys every pool (and its ready VMs).
  void shutdown();
  // Cancels every run in progress (a drain's grace period is over); their
  // results ("killed", cancelled) are still answered.
  void cancel_running();

 private:
  void run(const HttpRequest& request, ResponseWriter& writer);
  void refuse_over_budget(ResponseWriter& writer, const std::string& what, const std::string& budget_name,
                          const ByteBudget& budget, const std::string& field);
  void record(const engine::RunRequest& request, const engine::RunResult& result, SteadyClock::duration took);
  void list_pools(ResponseWriter& writer);
  void list_images(ResponseWriter& writer);
  void resize_pool(const std::string& name, const HttpRequest& request, ResponseWriter& writer);
  void create_pool(const HttpRequest& request, ResponseWriter& writer);
  void delete_pool(const std::string& name, const HttpRequest& request, ResponseWriter& writer);
  // Room in the VM budget for a run that found no ready guest: ready pooled
  // guests are destroyed for it if needed. nullopt: the budget is full of runs.
  // `wait`: how long to wait for room (default PoolLimits::room_wait).
  std::optional<engine::VmBudget::Reservation> room_for_run(
      const engine::Profile& profile, std::optional<std::chrono::milliseconds> wait = std::nullopt);
  void expire_idle_pools();
  // /v1/sandboxes and below (sandbox_api.cc).
  void handle_sandboxes(const HttpRequest& request, ResponseWriter& writer);
  void exec_in_sandbox(const std::string& id, const HttpRequest& request, ResponseWriter& writer);
  // POST /v1/sandboxes/{id}/pause|resume|snapshots|fork (snapshot_api.cc); false: not one of them.
  bool handle_sandbox_lifecycle(const std::string& id, const std::string& verb, const HttpRequest& request,
                                ResponseWriter& writer);
  // /v1/sandboxes/{id}/contexts[/{name}[/run|interrupt|restart]] (context_api.cc);
  // `path`: what follows "contexts/" (empty for the list).
  void handle_contexts(const std::string& id, const std::string& path, const HttpRequest& request,
                       ResponseWriter& writer);
  void run_cell(const std::string& id, const std::string& name, const HttpRequest& request,
                ResponseWriter& writer);
  // /v1/snapshots[/{snapshot}[/restore]].
  void handle_snapshots(const HttpRequest& request, ResponseWriter& writer);
  // /v1/sandboxes/{id}/execs/{eid}[/logs|/signal|/stdin] (exec_api.cc).
  void handle_exec(const std::string& id, const std::string& exec_path, const HttpRequest& request,
                   ResponseWriter& writer);
  void attach_terminal(const std::string& id, const std::string& exec_id, const HttpRequest& request,
                       ResponseWriter& writer);
  void stream_exec_logs(const std::string& id, const std::string& exec_id, const HttpRequest& request,
                        ResponseWriter& writer);
  // PUT/GET /v1/sandboxes/{id}/files?path=: raw bytes both ways; downloads stream.
  void upload_file(const std::string& id, const HttpRequest& request, ResponseWriter& writer);
  void download_file(const std::string& id, const HttpRequest& request, ResponseWriter& writer);
  // /v1/sandboxes/{id}/ports[/{port}]: port forwards.
  void handle_ports(const std::string& id, const std::string& verb, const HttpRequest& request,
                    ResponseWriter& writer);
  // GET /v1/sandboxes/{id}/list?path=: a directory's entries.
  void list_directory(const std::string& id, const HttpRequest& request, ResponseWriter& writer);
  static constexpr uint64_t kMaxDownloadBytes = 1ULL << 30;
  // A new sandbox's guest: from its profile's pool if one is ready, else started; with its room.
  // With `start`: made by it (a copy of a snapshot), never from a pool.
  engine::AcquiredGuest acquire_for_sandbox(const engine::SandboxSpec& spec,
                                            const std::function<engine::ReadyGuest()>* start = nullptr);
  // Beside what the program writes, an overlay holds the warm-up's pages and qcow2 metadata.
  static constexpr uint64_t kOverlayOverheadMb = 32;
  // A new pool for `profile`, or null if it has one; pools_mutex_ held.
  engine::WarmPool* create_pool_locked(const engine::Profile& profile, int target);
  std::string pool_metrics() const;

  engine::Engine& engine_;
  Admission& admission_;
  ByteBudget& output_budget_;
  ByteBudget& disk_budget_;
  engine::VmBudget& vm_budget_;
  Metrics& metrics_;
  std::string accel_;
  const PoolLimits pool_limits_;
  mutable std::mutex pools_mutex_;
  std::map<std::string, std::unique_ptr<engine::WarmPool>> pools_;
  std::set<std::string> permanent_pools_;  // add_pool's: the daemon's own, never expired
  // While it lives, `token` is cancelled by cancel_running(): a run, an exec
  // waited for, a follower of logs or a terminal, so that none holds a
  // drain past its grace period.
  class CancelledOnDrain {
   public:
    CancelledOnDrain(Api& api, const engine::CancelToken& token);
    ~CancelledOnDrain();
    CancelledOnDrain(const CancelledOnDrain&) = delete;
    CancelledOnDrain& operator=(const CancelledOnDrain&) = delete;

   private:
    Api& api_;
    const engine::CancelToken& token_;
  };
  std::mutex running_mutex_;
  std::set<const engine::CancelToken*> running_;  // for cancel_running()
  std::unique_ptr<engine::SandboxRegistry> sandboxes_;
  engine::CancelToken stop_expiry_;
  std::thread expiry_;  // declared last: started after, and joined before, the rest
};

}  // namespace airlock::server
