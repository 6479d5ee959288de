#pragma once

#include <map>
#include <memory>
#include <string>

#include "common/clock.h"
#include "engine/engine.h"
#include "engine/warm_pool.h"
#include "server/admission.h"
#include "server/http_server.h"
#include "server/metrics.h"

namespace airlock::server {

// The HTTP API of docs/api.yaml: parses a request into one engine call and
// maps the engine's typed errors to HTTP statuses in one table.
class Api {
 public:
  Api(engine::Engine& engine, Admission& admission, ByteBudget& output_budget, Metrics& metrics,
      const std::string& accel);

  // What a run's output may cost this daemon's memory, at most (ByteBudget).
  static uint64_t output_cost(const engine::RunRequest& request, bool streaming);

  // Creates (or resizes) the warm pool of a profile.
  void add_pool(const engine::Profile& profile, int target);
  void handle(const HttpRequest& request, ResponseWriter& writer);
  // Destroys every pool (and its ready VMs).
  void shutdown();

 private:
  void run(const HttpRequest& request, ResponseWriter& writer);
  void record(const engine::RunRequest& request, const engine::RunResult& result, SteadyClock::duration took);
  void list_pools(ResponseWriter& writer);
  void resize_pool(const std::string& name, const HttpRequest& request, ResponseWriter& writer);
  void create_pool(const HttpRequest& request, ResponseWriter& writer);
  // A new pool for `profile`, or null if it has one; pools_mutex_ held.
  engine::WarmPool* create_pool_locked(const engine::Profile& profile, int target);
  std::string pool_metrics() const;

  engine::Engine& engine_;
  Admission& admission_;
  ByteBudget& output_budget_;
  Metrics& metrics_;
  std::string accel_;
  mutable std::mutex pools_mutex_;
  std::map<std::string, std::unique_ptr<engine::WarmPool>> pools_;
};

}  // namespace airlock::server
