#include "server/api.h"

#include <poll.h>

#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "common/clock.h"
#include "common/error.h"
#include "engine/languages.h"
#include "server/event_stream.h"
#include "server/request_parsing.h"
#include "server/responses.h"

namespace airlock::server {

using nlohmann::json;

namespace {

json pool_json(const engine::PoolStats& stats) {
  json mounts = json::array();
  for (const auto& mount : stats.profile.mounts) mounts.push_back(mount.to_string());
  return {
      {"name", stats.name},
      {"language", stats.profile.language},
      {"image", stats.profile.image_name()},
      {"memory_mb", stats.profile.memory_mb},
      {"cpus", stats.profile.cpus},
      {"network", stats.profile.network},
      {"mounts", mounts},
      {"target", stats.target},
      {"ready", stats.ready},
      {"in_use", stats.in_use},
      {"hits", stats.hits},
      {"misses", stats.misses},
      {"refill_errors", stats.refill_errors},
      {"last_refill_error", stats.last_refill_error.empty() ? json(nullptr) : json(stats.last_refill_error)}};
}

}  // namespace

Api::Api(engine::Engine& engine, Admission& admission, Budgets budgets, Metrics& metrics,
         const std::string& accel, PoolLimits pool_limits)
    : engine_(engine),
      admission_(admission),
      output_budget_(budgets.output),
      disk_budget_(budgets.disk),
      vm_budget_(budgets.vms),
      metrics_(metrics),
      accel_(accel),
      pool_limits_(pool_limits) {
  sandboxes_ = std::make_unique<engine::SandboxRegistry>(
      engine_,
      [this](const engine::SandboxSpec& spec, const std::function<engine::ReadyGuest()>* start) {
        return acquire_for_sandbox(spec, start);
      },
      pool_limits_.max_sandboxes, engine_.snapshot_dir());
  expiry_ = std::thread([this] {
    pollfd stop{stop_expiry_.fd(), POLLIN, 0};
    while (::poll(&stop, 1, 1000) == 0) expire_idle_pools();
  });
}

Api::~Api() { shutdown(); }

void Api::add_pool(const engine::Profile& profile, int target) {
  std::lock_guard lock(pools_mutex_);
  permanent_pools_.insert(profile.name());
  if (!create_pool_locked(profile, target)) pools_.at(profile.name())->set_target(target);
}

Api::CancelledOnDrain::CancelledOnDrain(Api& api, const engine::CancelToken& token)
    : api_(api), token_(token) {
  std::lock_guard lock(api_.running_mutex_);
  api_.running_.insert(&token_);
}

Api::CancelledOnDrain::~CancelledOnDrain() {
  std::lock_guard lock(api_.running_mutex_);
  api_.running_.erase(&token_);
}

void Api::cancel_running() {
  std::lock_guard lock(running_mutex_);
  for (const engine::CancelToken* run : running_) run->cancel();
}

void Api::expire_idle_pools() {
  std::vector<std::unique_ptr<engine::WarmPool>> expired;
  {
    std::lock_guard lock(pools_mutex_);
    const auto now = SteadyClock::now();
    for (auto it = pools_.begin(); it != pools_.end();) {
      const engine::PoolStats stats = it->second->stats();
      if (!permanent_pools_.count(it->first) && stats.in_use == 0 &&
          now - stats.last_used > pool_limits_.idle_timeout) {
        expired.push_back(std::move(it->second));
        it = pools_.erase(it);
      } else {
        ++it;
      }
    }
  }
  // Destroyed outside the lock: their ready VMs go, and their room in the budget.
}

std::optional<engine::VmBudget::Reservation> Api::room_for_run(
    const engine::Profile& profile, std::optional<std::chrono::milliseconds> wait) {
  if (auto room = vm_budget_.try_reserve(profile.memory_mb, profile.cpus)) return room;
  // Room freed from here on is this run's, not a pool refill's.
  engine::VmBudget::Claim claim(vm_budget_);
  // VMs a pool is starting right now become ready (or fail) within seconds.
  const auto deadline = SteadyClock::now() + wait.value_or(pool_limits_.room_wait);
  for (;;) {
    // A request is worth more than a VM waiting for one: take a ready one's room.
    bool shed = false;
    {
      std::lock_guard lock(pools_mutex_);
      for (auto& [name, pool] : pools_) {
        if ((shed = pool->shed_one())) break;
      }
    }
    auto room =
        vm_budget_.reserve_within(profile.memory_mb, profile.cpus,
                                  shed ? std::chrono::milliseconds(0) : std::chrono::milliseconds(200), true);
    if (room || SteadyClock::now() > deadline) return room;
  }
}

engine::WarmPool* Api::create_pool_locked(const engine::Profile& profile, int target) {
  auto& pool = pools_[profile.name()];
  if (pool) return nullptr;
  pool = std::make_unique<engine::WarmPool>(
      engine_, profile, target,
      [this](const engine::ReadyGuest& guest) {
        if (guest.from_snapshot()) metrics_.record_restore(guest.start_timing().boot_ms / 1000.0);
      },
      &vm_budget_);
  return pool.get();
}

void Api::shutdown() {
  sandboxes_.reset();  // their VMs first: some came from the pools below
  stop_expiry_.cancel();
  if (expiry_.joinable()) expiry_.join();
  std::map<std::string, std::unique_ptr<engine::WarmPool>> pools;
  {
    std::lock_guard lock(pools_mutex_);
    pools.swap(pools_);
  }
}

void Api::handle(const HttpRequest& request, ResponseWriter& writer) {
  try {
    if (request.target == "/v1/run") {
      if (request.method != "POST") return send_error(writer, 405, "invalid_argument", "use POST", false);
      return run(request, writer);
    }
    if (request.target == "/v1/sandboxes" || request.target.rfind("/v1/sandboxes/", 0) == 0) {
      return handle_sandboxes(request, writer);
    }
    if (request.target == "/v1/snapshots" || request.target.rfind("/v1/snapshots/", 0) == 0) {
      return handle_snapshots(request, writer);
    }
    if (request.target == "/v1/pools" && request.method == "GET") return list_pools(writer);
    if (request.target == "/v1/images" && request.method == "GET") return list_images(writer);
    if (request.target == "/v1/pools" && request.method == "POST") return create_pool(request, writer);
    if (request.target.rfind("/v1/pools/", 0) == 0 && request.method == "PUT") {
      return resize_pool(request.target.substr(std::string("/v1/pools/").size()), request, writer);
    }
    if (request.target.rfind("/v1/pools/", 0) == 0 && request.method == "DELETE") {
      return delete_pool(request.target.substr(std::string("/v1/pools/").size()), request, writer);
    }
    if (request.target == "/v1/health" && request.method == "GET") {
      return writer.send(200, "application/json",
                         dump({{"status", "serving"}, {"version", AIRLOCK_VERSION}, {"accel", accel_}}));
    }
    if (request.target == "/metrics" && request.method == "GET") {
      return writer.send(200, "text/plain; version=0.0.4", metrics_.render(pool_metrics()));
    }
    send_error(writer, 404, "not_found", "no endpoint " + request.method + " " + request.target, false);
  } catch (const Error& e) {
    send_error(writer, e);
  }
}

uint64_t Api::output_cost(const engine::RunRequest& request, bool streaming) {
  // Kept as it arrives, then encoded (at most twice its size) while the
  // encoding is written into the response: three times the limits.
  return 3 * (request.stdout_limit + request.stderr_limit) + (streaming ? EventStream::kDefaultMaxBytes : 0);
}

void Api::refuse_over_budget(ResponseWriter& writer, const std::string& what, const std::string& budget_name,
                             const ByteBudget& budget, const std::string& field) {
  metrics_.record_queue_rejection();
  send_error(writer, 429, "overloaded",
             what + " of the runs in progress fill this airlockd's " + budget_name + " budget (" +
                 std::to_string(budget.total() >> 20) + " MiB); try again, or ask for a smaller " + field,
             true);
}

void Api::run(const HttpRequest& http_request, ResponseWriter& writer) {
  const auto started = SteadyClock::now();
  // Checked once, into the plan the rest takes; refused before the response (or its stream) begins.
  const engine::RunPlan plan = engine_.plan(parse_run_request(http_request.body));
  const engine::RunRequest& request = plan.request;
  const bool streaming = http_request.accept.find("application/x-ndjson") != std::string::npos;
  auto output = output_budget_.reserve(output_cost(request, streaming));
  if (!output)
    return refuse_over_budget(writer, "the output", "output", output_budget_, "stdout_limit/stderr_limit");
  // What the program may write lands in its overlay on the runtime directory's disk.
  auto disk = disk_budget_.reserve((static_cast<uint64_t>(request.disk_mb) + kOverlayOverheadMb) << 20);
  if (!disk) return refuse_over_budget(writer, "the disk writes", "disk", disk_budget_, "disk_mb");
  std::optional<Admission::Ticket> ticket = admission_.enter();
  if (!ticket) {
    metrics_.record_queue_rejection();
    return send_error(writer, 429, "overloaded", "too many runs in progress and queued; try again", true);
  }
  engine::WarmPool* pool = nullptr;
  {
    std::lock_guard lock(pools_mutex_);
    auto it = pools_.find(plan.profile.name());
    if (it != pools_.end()) pool = it->second.get();
  }
  std::optional<engine::WarmPool::Lease> lease;
  if (pool) lease.emplace(pool->acquire());
  // Every VM is in the budget: a pooled guest brings its share, any other takes one.
  std::optional<engine::VmBudget::Reservation> vm_room;
  if (lease && lease->hit()) vm_room = lease->take_reservation();
  if (!vm_room) vm_room = room_for_run(plan.profile);
  if (!vm_room) {
    metrics_.record_queue_rejection();
    const auto usage = vm_budget_.usage();
    return send_error(writer, 429, "overloaded",
                      "this airlockd's VMs use " + std::to_string(usage.memory_mb) + " of " +
                          std::to_string(usage.memory_budget_mb) + " MiB and " + std::to_string(usage.cpus) +
                          " of " + std::to_string(usage.cpu_budget) + " vCPUs of its VM budget; try again",
                      true);
  }

  engine::CancelToken cancel;
  CancelledOnDrain registered(*this, cancel);
  std::optional<EventStream> stream;
  std::optional<NdjsonSink> sink;
  if (streaming) {
    stream.emplace(writer, cancel);
    sink.emplace(*stream);
  }
  engine::RunResult result;
  {
    // A client that hangs up cancels its run: no VM keeps working for nobody.
    HangupWatch hangup(http_request.client_fd, cancel);
    try {
      result = engine_.run(plan, sink ? &*sink : nullptr, &cancel,
                           lease ? lease->take_guest() : std::optional<engine::ReadyGuest>{});
    } catch (const Error& e) {
      // A mount that changed since the check is the client's; missing images
      // or an unusable accelerator are this server's trouble.
      if (!streaming && e.code() == ErrorCode::invalid_argument) return send_error(writer, e);
      if (!streaming) return send_error(writer, 503, "unavailable", e.what(), false);
      result.status = engine::RunStatus::internal_error;
      result.error = e.what();
    }
  }
  // The run is over (its VM already retiring): its slot is free before the
  // answer is written, however slowly the client takes it.
  ticket.reset();
  lease.reset();
  vm_room.reset();
  record(request, result, SteadyClock::now() - started);
  std::string body = result_body(std::move(result));
  if (streaming) {
    stream->finish(R"({"type":"result","result":)" + body + "}\n");
  } else {
    writer.send(200, "application/json", std::move(body));
  }
}

void Api::record(const engine::RunRequest& request, const engine::RunResult& result,
                 SteadyClock::duration took) {
  metrics_.record_run(engine::find_language(request.language).name,
                      std::string(engine::to_string(result.status)),
                      std::chrono::duration<double>(took).count());
  metrics_.record_network_denials(result.network_denied.size());
  // (Pool clones report their restore time through the pool's callback.)
  if (result.from_snapshot && !result.pool_hit) metrics_.record_restore(result.timing.boot_ms / 1000.0);
  if (result.status == engine::RunStatus::internal_error &&
      result.error.find("stopped unexpectedly") != std::string::npos) {
    metrics_.record_vm_crash();
  }
}

void Api::list_images(ResponseWriter& writer) {
  json images = json::array();
  for (const auto& image : engine_.images()) {
    json entry = {{"name", image.name},
                  {"origin", image.digest.empty() ? "built" : "imported"},
                  {"languages", image.languages},
                  {"env", image.env},
                  {"digest", image.digest.empty() ? json(nullptr) : json(image.digest)}};
    if (!image.source.empty()) entry["source"] = image.source;
    images.push_back(std::move(entry));
  }
  writer.send(200, "application/json", dump({{"images", images}}));
}

void Api::list_pools(ResponseWriter& writer) {
  json pools = json::array();
  std::lock_guard lock(pools_mutex_);
  for (const auto& [name, pool] : pools_) pools.push_back(pool_json(pool->stats()));
  writer.send(200, "application/json", dump({{"pools", pools}}));
}

namespace {

// Pools hold VMs for everyone: only the daemon's operator shapes them.
void require_operator(const HttpRequest& request) {
  if (request.from_operator) return;
  throw Error(ErrorCode::permission_denied,
              "managing pools is the operator's: use the Unix socket, or over TCP the operator token "
              "(airlockd --operator-token-file)");
}

}  // namespace

void Api::create_pool(const HttpRequest& http_request, ResponseWriter& writer) {
  require_operator(http_request);
  PoolRequest pool_request = parse_pool_request(http_request.body);
  // Network, mounts: as a run of the profile would be checked.
  const engine::Profile profile = engine_.plan(std::move(pool_request.request)).profile;
  std::lock_guard lock(pools_mutex_);
  if (!pools_.count(profile.name()) &&
      pools_.size() - permanent_pools_.size() >= static_cast<size_t>(pool_limits_.max_pools)) {
    return send_error(writer, 409, "conflict",
                      "this airlockd already has " + std::to_string(pool_limits_.max_pools) +
                          " pools of its callers (--max-pools); DELETE /v1/pools/{name} one first",
                      false);
  }
  engine::WarmPool* pool = create_pool_locked(profile, pool_request.target);
  if (!pool) {
    return send_error(
        writer, 409, "conflict",
        "pool '" + profile.name() + "' exists; PUT /v1/pools/" + profile.name() + " changes its target",
        false);
  }
  writer.send(201, "application/json", dump(pool_json(pool->stats())));
}

void Api::delete_pool(const std::string& name, const HttpRequest& request, ResponseWriter& writer) {
  require_operator(request);
  std::unique_ptr<engine::WarmPool> doomed;
  {
    std::lock_guard lock(pools_mutex_);
    auto it = pools_.find(name);
    if (it == pools_.end()) throw Error(ErrorCode::not_found, "no pool named '" + name + "'");
    doomed = std::move(it->second);
    pools_.erase(it);
    permanent_pools_.erase(name);
  }
  const json body = pool_json(doomed->stats());
  doomed.reset();  // its ready VMs are destroyed before the answer
  writer.send(200, "application/json", dump(body));
}

void Api::resize_pool(const std::string& name, const HttpRequest& request, ResponseWriter& writer) {
  require_operator(request);
  const int target = parse_pool_target(request.body);
  std::lock_guard lock(pools_mutex_);
  auto it = pools_.find(name);
  if (it == pools_.end()) throw Error(ErrorCode::not_found, "no pool named '" + name + "'");
  it->second->set_target(target);
  writer.send(200, "application/json", dump(pool_json(it->second->stats())));
}

std::string Api::pool_metrics() const {
  std::string ready = "# TYPE airlock_pool_ready gauge\n", in_use = "# TYPE airlock_pool_in_use gauge\n",
              hits = "# TYPE airlock_pool_hits_total counter\n",
              misses = "# TYPE airlock_pool_misses_total counter\n";
  std::lock_guard lock(pools_mutex_);
  for (const auto& [name, pool] : pools_) {
    auto stats = pool->stats();
    const std::string label = "{pool=\"" + name + "\"} ";
    ready += "airlock_pool_ready" + label + std::to_string(stats.ready) + "\n";
    in_use += "airlock_pool_in_use" + label + std::to_string(stats.in_use) + "\n";
    hits += "airlock_pool_hits_total" + label + std::to_string(stats.hits) + "\n";
    misses += "airlock_pool_misses_total" + label + std::to_string(stats.misses) + "\n";
  }
  const engine::TemplateStore::Stats templates = engine_.template_stats();
  const std::string template_lines =
      "# TYPE airlock_templates gauge\nairlock_templates " + std::to_string(templates.templates) +
      "\n# TYPE airlock_template_ram_bytes gauge\nairlock_template_ram_bytes " +
      std::to_string(templates.memory_bytes) +
      "\n# TYPE airlock_template_ram_budget_bytes gauge\nairlock_template_ram_budget_bytes " +
      std::to_string(templates.memory_budget_bytes) +
      "\n# TYPE airlock_template_evictions_total counter\nairlock_template_evictions_total " +
      std::to_string(templates.evictions) + "\n";
  const Admission::Load load = admission_.load();
  const std::string load_lines =
      "# TYPE airlock_runs_running gauge\nairlock_runs_running " + std::to_string(load.running) +
      "\n# TYPE airlock_runs_queued gauge\nairlock_runs_queued " + std::to_string(load.queued) + "\n";
  const engine::SandboxRegistry::Counts sandboxes =
      sandboxes_ ? sandboxes_->counts() : engine::SandboxRegistry::Counts{};
  const std::string sandbox_lines =
      "# TYPE airlock_sandboxes gauge\nairlock_sandboxes " + std::to_string(sandboxes.live) +
      "\n# TYPE airlock_sandboxes_max gauge\nairlock_sandboxes_max " + std::to_string(sandboxes.max) + "\n";
  return ready + in_use + hits + misses + template_lines + load_lines + sandbox_lines;
}

}  // namespace airlock::server
