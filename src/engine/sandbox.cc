#include "engine/sandbox.h"

#include <sys/random.h>

#include <algorithm>

#include "common/error.h"
#include "engine/live_sandbox.h"
#include "protocol/guest_path.h"

namespace airlock::engine {

namespace {

[[noreturn]] void reject(const std::string& message) { throw Error(ErrorCode::invalid_argument, message); }

}  // namespace

std::string_view to_string(SandboxState state) {
  switch (state) {
    case SandboxState::creating: return "creating";
    case SandboxState::ready: return "ready";
    case SandboxState::busy: return "busy";
    case SandboxState::paused: return "paused";
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
  if (request.rows < 1 || request.rows > 1000 || request.cols < 1 || request.cols > 1000) {
    reject("rows and cols must be 1-1000 (" + std::to_string(request.rows) + "x" +
           std::to_string(request.cols) + ")");
  }
  if (request.argv[0].empty()) reject("argv[0] is empty");
  if (request.cwd.empty() || request.cwd[0] != '/' || request.cwd.find('\0') != std::string::npos) {
    reject("cwd must be an absolute path: " + request.cwd);
  }
  const int shortest = request.background ? 0 : 1;
  if (request.timeout_s < shortest || request.timeout_s > SandboxLimits::kMaxExecTimeoutS) {
    reject("timeout_s " + std::to_string(request.timeout_s) + " is out of range (" +
           std::to_string(shortest) + "-" + std::to_string(SandboxLimits::kMaxExecTimeoutS) +
           (request.background ? ", 0: none)" : "; only a background exec may have none)"));
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

SandboxRegistry::SandboxRegistry(Engine& engine, GuestSource source, int max_sandboxes,
                                 const std::string& snapshot_dir)
    : engine_(engine), source_(std::move(source)), max_sandboxes_(max_sandboxes), snapshots_(snapshot_dir) {
  reaper_ = std::thread([this] { reap_loop(); });
}

SandboxRegistry::~SandboxRegistry() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  stop_wake_.notify_all();
  reaper_.join();
  std::map<std::string, std::shared_ptr<LiveSandbox>> sandboxes;
  {
    std::lock_guard lock(mutex_);
    sandboxes.swap(sandboxes_);
  }
  for (auto& [id, sandbox] : sandboxes) sandbox->stop("airlockd is shutting down");
}

SandboxInfo SandboxRegistry::create(SandboxSpec spec) {
  return admit(std::move(spec), [this](const SandboxSpec& admitted) { return source_(admitted, nullptr); });
}

SandboxInfo SandboxRegistry::admit(SandboxSpec spec,
                                   const std::function<AcquiredGuest(const SandboxSpec&)>& acquire) {
  validate(spec);
  // Seen as `creating` while its VM is found or started.
  SandboxInfo creating;
  creating.id = new_sandbox_id();
  creating.profile = spec.plan.profile;
  creating.ttl_s = spec.ttl_s;
  creating.idle_timeout_s = spec.idle_timeout_s;
  creating.created_at_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                               std::chrono::system_clock::now().time_since_epoch())
                               .count();
  creating.idle_since_ms = creating.created_at_ms;
  creating.expires_at_ms = creating.created_at_ms + static_cast<int64_t>(spec.ttl_s) * 1000;
  {
    std::lock_guard lock(mutex_);
    int live = static_cast<int>(creating_.size());
    for (const auto& [id, sandbox] : sandboxes_) live += sandbox->live() ? 1 : 0;
    if (live >= max_sandboxes_) {
      throw Error(ErrorCode::overloaded, std::to_string(live) +
                                             " sandboxes are live, this airlockd's most (" +
                                             std::to_string(max_sandboxes_) + "); destroy one, or try again");
    }
    creating_.emplace(creating.id, creating);
  }
  struct Admitted {
    SandboxRegistry& registry;
    const std::string& id;
    ~Admitted() {
      std::lock_guard lock(registry.mutex_);
      registry.creating_.erase(id);
    }
  } admitted{*this, creating.id};
  AcquiredGuest acquired = acquire(spec);
  auto sandbox = std::make_shared<LiveSandbox>(creating.id, std::move(spec), std::move(acquired));
  SandboxInfo info = sandbox->info();
  std::lock_guard lock(mutex_);
  sandboxes_.emplace(info.id, std::move(sandbox));
  creating_.erase(info.id);  // listed once, never twice
  return info;
}

std::shared_ptr<LiveSandbox> SandboxRegistry::find(const std::string& id) {
  std::lock_guard lock(mutex_);
  auto it = sandboxes_.find(id);
  if (it != sandboxes_.end()) return it->second;
  if (creating_.count(id)) {
    throw Error(ErrorCode::conflict, "sandbox " + id + " is creating: its create answers once it is ready");
  }
  throw Error(ErrorCode::not_found, "no sandbox " + id);
}

SandboxInfo SandboxRegistry::info(const std::string& id) {
  {
    std::lock_guard lock(mutex_);
    if (auto it = creating_.find(id); it != creating_.end()) return it->second;
  }
  return find(id)->info();
}

std::vector<SandboxInfo> SandboxRegistry::list() {
  std::vector<std::shared_ptr<LiveSandbox>> all;
  std::vector<SandboxInfo> infos;
  {
    std::lock_guard lock(mutex_);
    for (const auto& [id, sandbox] : sandboxes_) all.push_back(sandbox);
    for (const auto& [id, creating] : creating_) infos.push_back(creating);
  }
  for (const auto& sandbox : all) infos.push_back(sandbox->info());
  return infos;
}

void SandboxRegistry::expect_live(const std::string& id) { find(id)->expect_live(); }

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
  return find(id)->run_exec(request, sink, cancel);
}

std::string SandboxRegistry::start_exec(const std::string& id, const ExecRequest& request) {
  validate(request);
  return find(id)->start_exec(request)->id();
}

namespace {

ExecInfo describe(const LiveSandbox& sandbox, ExecRecord& record, bool with_output) {
  ExecInfo info;
  info.id = record.id();
  info.argv = record.argv();
  info.background = record.background();
  info.tty = record.exec().tty;
  info.running = record.state() == ExecState::running;
  info.started_at_ms = record.started_at_ms();
  info.ended_at_ms = record.ended_at_ms();
  info.stdout_dropped = record.dropped_bytes(true);
  info.stderr_dropped = record.dropped_bytes(false);
  if (!info.running) {
    info.result = sandbox.result_of(record);
    if (!with_output) info.result->stdout_data.clear(), info.result->stderr_data.clear();
  } else if (with_output) {
    ExecOutcome outcome = record.outcome();
    info.stdout_data = std::move(outcome.stdout_data);
    info.stderr_data = std::move(outcome.stderr_data);
  }
  return info;
}

}  // namespace

std::vector<ExecInfo> SandboxRegistry::execs(const std::string& id) {
  std::vector<ExecInfo> infos;
  auto sandbox = find(id);
  for (const auto& record : sandbox->execs()) infos.push_back(describe(*sandbox, *record, false));
  return infos;
}

ExecInfo SandboxRegistry::exec_info(const std::string& id, const std::string& exec_id, bool with_output) {
  auto sandbox = find(id);
  return describe(*sandbox, *sandbox->find_exec(exec_id), with_output);
}

ExecInfo SandboxRegistry::read_exec_output(const std::string& id, const std::string& exec_id, bool follow,
                                           OutputSink& sink, const std::function<void(uint64_t)>& on_dropped,
                                           const CancelToken* cancel) {
  auto sandbox = find(id);
  auto record = sandbox->find_exec(exec_id);
  uint64_t next = 0;
  for (;;) {
    ExecRecord::Update update = record->read(next, std::chrono::milliseconds(follow ? 50 : 0));
    next = update.next;
    if (update.dropped > 0) on_dropped(update.dropped);
    for (const auto& chunk : update.chunks) {
      chunk.is_stdout ? sink.on_stdout(chunk.bytes) : sink.on_stderr(chunk.bytes);
    }
    if (update.ended || !follow || (cancel && cancel->cancelled())) break;
  }
  return describe(*sandbox, *record, false);
}

PortInfo SandboxRegistry::forward_port(const std::string& id, int guest_port) {
  if (guest_port < 1 || guest_port > 65535) {
    throw Error(ErrorCode::invalid_argument,
                "port " + std::to_string(guest_port) + " is out of range (1-65535)");
  }
  return find(id)->forward_port(static_cast<uint16_t>(guest_port));
}

std::vector<PortInfo> SandboxRegistry::ports(const std::string& id) { return find(id)->ports(); }

void SandboxRegistry::close_port(const std::string& id, int guest_port) {
  find(id)->close_port(static_cast<uint16_t>(std::clamp(guest_port, 0, 65535)));
}

void SandboxRegistry::resize_exec(const std::string& id, const std::string& exec_id, int rows, int cols) {
  if (rows < 1 || rows > 1000 || cols < 1 || cols > 1000) {
    throw Error(ErrorCode::invalid_argument,
                "rows and cols must be 1-1000 (" + std::to_string(rows) + "x" + std::to_string(cols) + ")");
  }
  find(id)->resize_exec(exec_id, rows, cols);
}

void SandboxRegistry::signal_exec(const std::string& id, const std::string& exec_id, int number) {
  find(id)->signal_exec(exec_id, number);
}

void SandboxRegistry::write_exec_stdin(const std::string& id, const std::string& exec_id,
                                       std::string_view bytes, bool close) {
  find(id)->write_exec_stdin(exec_id, bytes, close);
}

void SandboxRegistry::upload(const std::string& id, const std::string& path, uint64_t size, uint32_t mode,
                             const ContentReader& read) {
  validate_file_path(path);
  validate_file_mode(mode);
  find(id)->upload(path, size, mode, read);
}

protocol::FileEnd SandboxRegistry::download(const std::string& id, const std::string& path,
                                            uint64_t max_bytes,
                                            const std::function<bool(std::string_view)>& on_data) {
  validate_file_path(path);
  return find(id)->download(path, max_bytes, on_data);
}

DirectoryListing SandboxRegistry::list(const std::string& id, const std::string& path, uint64_t max_entries) {
  if (path != "/") validate_file_path(path);
  if (max_entries < 1 || max_entries > protocol::ListDir::kMaxEntries) {
    throw Error(ErrorCode::invalid_argument, "max_entries " + std::to_string(max_entries) +
                                                 " is out of range (1-" +
                                                 std::to_string(protocol::ListDir::kMaxEntries) + ")");
  }
  return find(id)->list(path, max_entries);
}

void SandboxRegistry::remove(const std::string& id, const std::string& path) {
  validate_file_path(path);
  find(id)->remove(path);
}

protocol::DirEntry SandboxRegistry::stat(const std::string& id, const std::string& path) {
  if (path != "/") validate_file_path(path);
  return find(id)->stat(path);
}

ArchiveCounts SandboxRegistry::upload_archive(const std::string& id, const std::string& directory,
                                              const ContentReader& read) {
  if (directory != "/") validate_file_path(directory);
  return find(id)->upload_archive(directory, read);
}

ArchiveCounts SandboxRegistry::download_archive(const std::string& id, const std::string& path,
                                                const std::function<bool(std::string_view)>& on_data) {
  if (path != "/") validate_file_path(path);
  return find(id)->download_archive(path, on_data);
}

SandboxRegistry::Counts SandboxRegistry::counts() {
  std::lock_guard lock(mutex_);
  Counts counts{static_cast<int>(creating_.size()), max_sandboxes_};
  for (const auto& [id, sandbox] : sandboxes_) counts.live += sandbox->live() ? 1 : 0;
  return counts;
}

void SandboxRegistry::reap_loop() {
  std::unique_lock lock(mutex_);
  while (!stop_wake_.wait_for(lock, std::chrono::milliseconds(500), [this] { return stopping_; })) {
    std::vector<std::pair<std::string, std::shared_ptr<LiveSandbox>>> all(sandboxes_.begin(),
                                                                          sandboxes_.end());
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
