#include "engine/sandbox.h"

#include <poll.h>
#include <sys/random.h>

#include "common/error.h"
#include "protocol/guest_path.h"

namespace airlock::engine {

namespace {

using SystemClock = std::chrono::system_clock;

// How long a stopped sandbox stays listed with its reason.
constexpr auto kStoppedRetention = std::chrono::minutes(10);
// How long a file may take to move (about 1 GiB at the channel's slowest).
constexpr auto kFileTimeout = std::chrono::seconds(600);
// How long destroying waits for a cancelled exec to end.
constexpr auto kCancelWait = std::chrono::seconds(30);

int64_t unix_ms(SystemClock::time_point at) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(at.time_since_epoch()).count();
}

[[noreturn]] void reject(const std::string& message) { throw Error(ErrorCode::invalid_argument, message); }

}  // namespace

std::string_view to_string(SandboxState state) {
  switch (state) {
    case SandboxState::creating: return "creating";
    case SandboxState::ready: return "ready";
    case SandboxState::busy: return "busy";
    case SandboxState::stopped: return "stopped";
  }
  return "unknown";
}

void validate(const SandboxSpec& spec) {
  if (spec.ttl_s < 1 || spec.ttl_s > SandboxLimits::kMaxTtlS) {
    reject("ttl_s " + std::to_string(spec.ttl_s) + " is out of range (1-" +
           std::to_string(SandboxLimits::kMaxTtlS) + ")");
  }
  if (spec.idle_timeout_s < 1 || spec.idle_timeout_s > spec.ttl_s) {
    reject("idle_timeout_s " + std::to_string(spec.idle_timeout_s) + " is out of range (1-ttl_s, " +
           std::to_string(spec.ttl_s) + ")");
  }
}

void validate(const ExecRequest& request) {
  if (request.argv.empty()) reject("argv is empty: say what to run");
  if (request.argv.size() > SandboxLimits::kMaxArgs) {
    reject("argv has more than " + std::to_string(SandboxLimits::kMaxArgs) + " arguments");
  }
  size_t bytes = 0;
  for (const auto& argument : request.argv) {
    if (argument.find('\0') != std::string::npos) reject("an argument of argv contains a NUL byte");
    bytes += argument.size() + 1;
  }
  if (bytes > SandboxLimits::kMaxArgvBytes) reject("argv is larger than 1 MiB");
  if (request.argv[0].empty()) reject("argv[0] is empty");
  if (request.cwd.empty() || request.cwd[0] != '/' || request.cwd.find('\0') != std::string::npos) {
    reject("cwd must be an absolute path: " + request.cwd);
  }
  if (request.timeout_s < 1 || request.timeout_s > SandboxLimits::kMaxExecTimeoutS) {
    reject("timeout_s " + std::to_string(request.timeout_s) + " is out of range (1-" +
           std::to_string(SandboxLimits::kMaxExecTimeoutS) + ")");
  }
  // The bounds a run has for the rest: env, output limits, stdin.
  RunRequest run;
  run.language = "shell";
  run.code = "true";  // a run's only; an exec has argv
  run.env = request.env;
  run.stdout_limit = request.stdout_limit;
  run.stderr_limit = request.stderr_limit;
  run.stdin_source.data = request.stdin_data;
  engine::validate(run);
}

void validate_file_path(const std::string& path) {
  const std::vector<std::string> parts = protocol::split_guest_path(path);
  if (protocol::join_guest_path(parts) != path) {
    reject("path '" + path + "' is not in its normal form (" + protocol::join_guest_path(parts) + ")");
  }
  if (parts.empty()) reject("path '/' is a directory, not a file");
}

void validate_file_mode(uint32_t mode) {
  if (mode > 0777) {
    reject("mode " + std::to_string(mode) + " is out of range (0-0777: no setuid, setgid or sticky bits)");
  }
}

std::string new_sandbox_id() {
  unsigned char bytes[16];
  size_t got = 0;
  while (got < sizeof bytes) {
    const ssize_t n = ::getrandom(bytes + got, sizeof bytes - got, 0);
    if (n < 0 && errno != EINTR) throw_errno("getrandom");
    if (n > 0) got += static_cast<size_t>(n);
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id = "sb-";
  for (unsigned char byte : bytes) {
    id += kHex[byte >> 4];
    id += kHex[byte & 15];
  }
  return id;
}

class SandboxRegistry::Sandbox {
 public:
  Sandbox(std::string id, SandboxSpec spec, AcquiredGuest acquired)
      : id_(std::move(id)),
        spec_(std::move(spec)),
        pool_hit_(acquired.pool_hit),
        guest_(std::move(acquired.guest)),
        room_(std::move(acquired.room)),
        reserved_(std::move(acquired.reserved)) {}

  ~Sandbox() { stop("destroyed"); }

  SandboxInfo info() const {
    std::lock_guard lock(mutex_);
    SandboxInfo info;
    info.id = id_;
    info.state = state_;
    info.stop_reason = stop_reason_;
    info.profile = spec_.plan.profile;
    info.ttl_s = spec_.ttl_s;
    info.idle_timeout_s = spec_.idle_timeout_s;
    info.created_at_ms = unix_ms(created_);
    info.expires_at_ms = unix_ms(created_ + std::chrono::seconds(spec_.ttl_s));
    info.idle_since_ms = unix_ms(idle_since_);
    info.execs = execs_;
    info.pool_hit = pool_hit_;
    return info;
  }

  void expect_ready() const {
    std::lock_guard lock(mutex_);
    if (state_ != SandboxState::ready) throw Error(ErrorCode::conflict, state_message());
  }

  void touch() {
    std::lock_guard lock(mutex_);
    if (state_ == SandboxState::stopped) throw Error(ErrorCode::conflict, state_message());
    idle_since_ = SystemClock::now();
  }

  RunResult exec(Engine& engine, const ExecRequest& request, OutputSink* sink, const CancelToken* cancel) {
    CancelToken own;
    const CancelToken* token = cancel ? cancel : &own;
    {
      std::lock_guard lock(mutex_);
      if (state_ != SandboxState::ready) throw Error(ErrorCode::conflict, state_message());
      state_ = SandboxState::busy;
      idle_since_ = SystemClock::now();
      running_ = token;
    }
    const RunRequest& limits = spec_.plan.request;
    const protocol::Exec exec =
        program_exec(find_language(limits.language), limits, request.argv, request.env, request.cwd,
                     request.stdout_limit, request.stderr_limit, request.timeout_s);
    RunResult result;
    try {
      result = engine.execute(*guest_, exec, StdinSource{-1, request.stdin_data}, sink, token,
                              std::chrono::seconds(request.timeout_s));
    } catch (...) {
      end_exec(false);
      throw;
    }
    end_exec(result.status == RunStatus::internal_error, result.error);
    return result;
  }

  // Runs `operation` on the guest's session while the sandbox is busy with it.
  template <typename Operation>
  auto file_operation(Operation&& operation) {
    {
      std::lock_guard lock(mutex_);
      if (state_ != SandboxState::ready) throw Error(ErrorCode::conflict, state_message());
      state_ = SandboxState::busy;
      idle_since_ = SystemClock::now();
    }
    try {
      auto result = operation(guest_->session());
      end_exec(false, {}, false);
      return result;
    } catch (const Error& e) {
      const bool broke = e.code() == ErrorCode::vm || e.code() == ErrorCode::protocol;
      end_exec(broke, e.what(), false);
      throw;
    }
  }

  // Stops it (an exec in progress is cancelled first) and destroys its VM.
  void stop(const std::string& reason) {
    std::unique_lock lock(mutex_);
    if (state_ == SandboxState::stopped) return;
    if (state_ == SandboxState::busy) {
      if (pending_stop_.empty()) pending_stop_ = reason;
      if (running_) running_->cancel();
      exec_ended_.wait_for(lock, kCancelWait, [this] { return state_ != SandboxState::busy; });
      if (state_ == SandboxState::busy) return;  // the exec's end finishes the stop
      if (state_ == SandboxState::stopped) return;
    }
    finish_stop(lock, reason);
  }

  // Why it must stop now, if it must.
  std::optional<std::string> due() const {
    std::lock_guard lock(mutex_);
    if (state_ == SandboxState::stopped) return std::nullopt;
    const auto now = SystemClock::now();
    if (now >= created_ + std::chrono::seconds(spec_.ttl_s)) {
      return "its ttl of " + std::to_string(spec_.ttl_s) + " s passed";
    }
    if (state_ == SandboxState::ready && now >= idle_since_ + std::chrono::seconds(spec_.idle_timeout_s)) {
      return "idle for " + std::to_string(spec_.idle_timeout_s) + " s (its idle timeout)";
    }
    if (state_ == SandboxState::ready && guest_) {
      pollfd exited{guest_->exit_fd(), POLLIN, 0};
      if (exited.fd >= 0 && ::poll(&exited, 1, 0) == 1) return std::string("its VM stopped unexpectedly");
    }
    return std::nullopt;
  }

  bool forgettable() const {
    std::lock_guard lock(mutex_);
    return state_ == SandboxState::stopped && SystemClock::now() - stopped_at_ > kStoppedRetention;
  }

  bool live() const {
    std::lock_guard lock(mutex_);
    return state_ != SandboxState::stopped;
  }

 private:
  std::string state_message() const {
    std::string message = "sandbox " + id_ + " is " + std::string(to_string(state_));
    if (state_ == SandboxState::stopped) message += ": " + stop_reason_;
    if (state_ == SandboxState::busy) message += " with another exec (one at a time)";
    return message;
  }

  void end_exec(bool broke, const std::string& error = {}, bool counted = true) {
    std::unique_lock lock(mutex_);
    running_ = nullptr;
    if (counted) ++execs_;
    idle_since_ = SystemClock::now();
    std::string reason = pending_stop_;
    if (reason.empty() && broke && guest_) {
      pollfd exited{guest_->exit_fd(), POLLIN, 0};
      if (exited.fd < 0 || ::poll(&exited, 1, 0) == 1) reason = "its VM stopped: " + error;
    }
    state_ = SandboxState::ready;
    if (!reason.empty()) {
      finish_stop(lock, reason);
      lock.lock();
    }
    exec_ended_.notify_all();
  }

  // Called with `lock` held; releases it while the VM is destroyed.
  void finish_stop(std::unique_lock<std::mutex>& lock, const std::string& reason) {
    state_ = SandboxState::stopped;
    stop_reason_ = reason;
    stopped_at_ = SystemClock::now();
    std::optional<ReadyGuest> guest = std::move(guest_);
    guest_.reset();
    std::optional<VmBudget::Reservation> room = std::move(room_);
    room_.reset();
    std::shared_ptr<void> reserved = std::move(reserved_);
    lock.unlock();
    guest.reset();  // the VM, its network and its directory go now, then its room in the budgets
    room.reset();
    reserved.reset();
  }

  const std::string id_;
  const SandboxSpec spec_;
  const bool pool_hit_;
  const SystemClock::time_point created_ = SystemClock::now();
  mutable std::mutex mutex_;
  std::condition_variable exec_ended_;
  SandboxState state_ = SandboxState::ready;
  std::string stop_reason_;
  std::string pending_stop_;
  SystemClock::time_point idle_since_ = SystemClock::now();
  SystemClock::time_point stopped_at_;
  int execs_ = 0;
  const CancelToken* running_ = nullptr;
  std::optional<ReadyGuest> guest_;
  std::optional<VmBudget::Reservation> room_;
  std::shared_ptr<void> reserved_;
};

SandboxRegistry::SandboxRegistry(Engine& engine, GuestSource source, int max_sandboxes)
    : engine_(engine), source_(std::move(source)), max_sandboxes_(max_sandboxes) {
  reaper_ = std::thread([this] { reap_loop(); });
}

SandboxRegistry::~SandboxRegistry() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  stop_wake_.notify_all();
  reaper_.join();
  std::map<std::string, std::shared_ptr<Sandbox>> sandboxes;
  {
    std::lock_guard lock(mutex_);
    sandboxes.swap(sandboxes_);
  }
  for (auto& [id, sandbox] : sandboxes) sandbox->stop("airlockd is shutting down");
}

SandboxInfo SandboxRegistry::create(SandboxSpec spec) {
  validate(spec);
  {
    std::lock_guard lock(mutex_);
    int live = creating_;
    for (const auto& [id, sandbox] : sandboxes_) live += sandbox->live() ? 1 : 0;
    if (live >= max_sandboxes_) {
      throw Error(ErrorCode::overloaded, std::to_string(live) +
                                             " sandboxes are live, this airlockd's most (" +
                                             std::to_string(max_sandboxes_) + "); destroy one, or try again");
    }
    ++creating_;
  }
  struct Admitted {
    SandboxRegistry& registry;
    ~Admitted() {
      std::lock_guard lock(registry.mutex_);
      --registry.creating_;
    }
  } admitted{*this};
  AcquiredGuest acquired = source_(spec);
  auto sandbox = std::make_shared<Sandbox>(new_sandbox_id(), std::move(spec), std::move(acquired));
  SandboxInfo info = sandbox->info();
  std::lock_guard lock(mutex_);
  sandboxes_.emplace(info.id, std::move(sandbox));
  return info;
}

std::shared_ptr<SandboxRegistry::Sandbox> SandboxRegistry::find(const std::string& id) {
  std::lock_guard lock(mutex_);
  auto it = sandboxes_.find(id);
  if (it == sandboxes_.end()) throw Error(ErrorCode::not_found, "no sandbox " + id);
  return it->second;
}

SandboxInfo SandboxRegistry::info(const std::string& id) { return find(id)->info(); }

std::vector<SandboxInfo> SandboxRegistry::list() {
  std::vector<std::shared_ptr<Sandbox>> all;
  {
    std::lock_guard lock(mutex_);
    for (const auto& [id, sandbox] : sandboxes_) all.push_back(sandbox);
  }
  std::vector<SandboxInfo> infos;
  for (const auto& sandbox : all) infos.push_back(sandbox->info());
  return infos;
}

void SandboxRegistry::expect_ready(const std::string& id) { find(id)->expect_ready(); }

SandboxInfo SandboxRegistry::touch(const std::string& id) {
  auto sandbox = find(id);
  sandbox->touch();
  return sandbox->info();
}

SandboxInfo SandboxRegistry::destroy(const std::string& id) {
  auto sandbox = find(id);
  sandbox->stop("destroyed by its owner");
  {
    std::lock_guard lock(mutex_);
    sandboxes_.erase(id);
  }
  return sandbox->info();
}

RunResult SandboxRegistry::exec(const std::string& id, const ExecRequest& request, OutputSink* sink,
                                const CancelToken* cancel) {
  validate(request);
  return find(id)->exec(engine_, request, sink, cancel);
}

void SandboxRegistry::upload(const std::string& id, const std::string& path, std::string_view content,
                             uint32_t mode) {
  validate_file_path(path);
  validate_file_mode(mode);
  find(id)->file_operation([&](GuestSession& session) {
    session.upload(path, content, mode, SteadyClock::now() + kFileTimeout);
    return true;
  });
}

protocol::FileEnd SandboxRegistry::download(const std::string& id, const std::string& path,
                                            uint64_t max_bytes,
                                            const std::function<bool(std::string_view)>& on_data) {
  validate_file_path(path);
  return find(id)->file_operation([&](GuestSession& session) {
    return session.download(path, max_bytes, on_data, SteadyClock::now() + kFileTimeout);
  });
}

SandboxRegistry::Counts SandboxRegistry::counts() {
  std::lock_guard lock(mutex_);
  Counts counts{creating_, max_sandboxes_};
  for (const auto& [id, sandbox] : sandboxes_) counts.live += sandbox->live() ? 1 : 0;
  return counts;
}

void SandboxRegistry::reap_loop() {
  std::unique_lock lock(mutex_);
  while (!stop_wake_.wait_for(lock, std::chrono::milliseconds(500), [this] { return stopping_; })) {
    std::vector<std::pair<std::string, std::shared_ptr<Sandbox>>> all(sandboxes_.begin(), sandboxes_.end());
    lock.unlock();
    std::vector<std::string> forgotten;
    for (const auto& [id, sandbox] : all) {
      if (auto reason = sandbox->due()) sandbox->stop(*reason);
      if (sandbox->forgettable()) forgotten.push_back(id);
    }
    all.clear();  // a sandbox forgotten here is destroyed outside the lock
    lock.lock();
    for (const auto& id : forgotten) sandboxes_.erase(id);
  }
}

}  // namespace airlock::engine
