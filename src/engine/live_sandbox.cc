#include "engine/live_sandbox.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <thread>

#include "common/error.h"
#include "engine/mux_files.h"

namespace airlock::engine {

namespace {

using SystemClock = std::chrono::system_clock;

// How long a stopped sandbox stays listed with its reason.
constexpr auto kStoppedRetention = std::chrono::minutes(10);
// How long a download may take (about 1 GiB at the channel's slowest).
constexpr auto kFileTimeout = std::chrono::seconds(600);
// How long a streamed upload waits for the guest to take more.
constexpr auto kFileStall = std::chrono::seconds(30);
// A guest that was told to stop an exec gets this long to report.
constexpr auto kStopGrace = std::chrono::milliseconds(1000);
// How often a waiting caller looks at its cancel token.
constexpr auto kCancelPoll = std::chrono::milliseconds(50);

int64_t unix_ms(SystemClock::time_point at) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(at.time_since_epoch()).count();
}

// Streams a host fd into an exec's stdin as its program reads (the
// window in ExecRecord::write_stdin holds the pace), on a thread of its own
// until the fd ends, the exec ends, or the pump is destroyed.
class StdinPump {
 public:
  StdinPump(int fd, std::shared_ptr<ExecRecord> record, std::shared_ptr<GuestMux> mux)
      : fd_(fd), stop_(::eventfd(0, EFD_CLOEXEC)), record_(std::move(record)), mux_(std::move(mux)) {
    if (!stop_) throw_errno("eventfd");
    thread_ = std::thread([this] { pump(); });
  }
  ~StdinPump() {
    uint64_t one = 1;
    ssize_t ignored = ::write(stop_.get(), &one, sizeof one);
    (void)ignored;
    thread_.join();
  }
  StdinPump(const StdinPump&) = delete;
  StdinPump& operator=(const StdinPump&) = delete;

 private:
  void pump() {
    std::string chunk(protocol::kDataChunk, '\0');
    try {
      for (;;) {
        pollfd fds[2] = {{fd_, POLLIN, 0}, {stop_.get(), POLLIN, 0}};
        if (::poll(fds, 2, -1) < 0) {
          if (errno == EINTR) continue;
          return;
        }
        if (fds[1].revents) return;
        const ssize_t n = ::read(fd_, chunk.data(), chunk.size());
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
          record_->write_stdin(*mux_, {}, /*close=*/true, SteadyClock::now() + std::chrono::seconds(60));
          return;
        }
        if (!hand_over(std::string_view(chunk.data(), static_cast<size_t>(n)))) return;
      }
    } catch (const Error&) {
      // The exec ended, or its sandbox: nobody reads any more.
    }
  }

  // Waits for the window in slices, so that a program that never reads
  // holds the pump only until it is destroyed.
  bool hand_over(std::string_view bytes) {
    while (!record_->wait_for_stdin_room(SteadyClock::now() + std::chrono::milliseconds(200))) {
      if (stopping()) return false;
    }
    record_->write_stdin(*mux_, bytes, false, SteadyClock::now() + std::chrono::seconds(60));
    return true;
  }

  bool stopping() const {
    pollfd stop{stop_.get(), POLLIN, 0};
    return ::poll(&stop, 1, 0) > 0;
  }

  const int fd_;
  UniqueFd stop_;
  std::shared_ptr<ExecRecord> record_;
  std::shared_ptr<GuestMux> mux_;
  std::thread thread_;
};

}  // namespace

LiveSandbox::LiveSandbox(std::string id, SandboxSpec spec, AcquiredGuest acquired)
    : id_(std::move(id)),
      spec_(std::move(spec)),
      pool_hit_(acquired.pool_hit),
      guest_(std::move(acquired.guest)),
      prestarted_waiting_(guest_->has_prestarted()),
      accel_(guest_->accel()),
      from_snapshot_(guest_->from_snapshot()),
      room_(std::move(acquired.room)),
      reserved_(std::move(acquired.reserved)),
      origin_(std::move(acquired.origin)),
      origin_id_(origin_ ? origin_->meta().id : "") {
  mux_ = guest_->multiplex();
}

LiveSandbox::~LiveSandbox() { stop("destroyed"); }

SandboxState LiveSandbox::state_locked() const {
  if (stopped_) return SandboxState::stopped;
  if (paused_) return SandboxState::paused;
  if (operations_ > 0) return SandboxState::busy;
  for (const auto& [number, exec] : execs_) {
    if (exec->state() == ExecState::running) return SandboxState::busy;
  }
  return SandboxState::ready;
}

SandboxInfo LiveSandbox::info() const {
  std::lock_guard lock(mutex_);
  SandboxInfo info;
  info.id = id_;
  info.state = state_locked();
  info.stop_reason = stop_reason_;
  info.profile = spec_.plan.profile;
  info.ttl_s = spec_.ttl_s;
  info.idle_timeout_s = spec_.idle_timeout_s;
  info.created_at_ms = unix_ms(created_);
  info.expires_at_ms = unix_ms(created_ + std::chrono::seconds(spec_.ttl_s));
  info.idle_since_ms = unix_ms(idle_since_);
  info.execs = exec_count_;
  info.origin_snapshot = origin_id_;
  info.pool_hit = pool_hit_;
  for (const auto& [number, exec] : execs_) info.running_execs += exec->state() == ExecState::running ? 1 : 0;
  return info;
}

std::string LiveSandbox::state_message() const {
  std::string message = "sandbox " + id_ + " is " + std::string(to_string(state_locked()));
  if (stopped_) message += ": " + stop_reason_;
  return message;
}

void LiveSandbox::expect_live() const {
  std::lock_guard lock(mutex_);
  if (stopped_ || paused_) throw Error(ErrorCode::conflict, state_message());
}

void LiveSandbox::touch() {
  std::lock_guard lock(mutex_);
  if (stopped_) throw Error(ErrorCode::conflict, state_message());
  idle_since_ = SystemClock::now();
}

std::shared_ptr<GuestMux> LiveSandbox::live_mux() const {
  std::lock_guard lock(mutex_);
  if (stopped_ || paused_ || !mux_) throw Error(ErrorCode::conflict, state_message());
  return mux_;
}

void LiveSandbox::forget_old_execs_locked() {
  size_t ended = 0;
  for (const auto& [number, exec] : execs_) ended += exec->state() == ExecState::exited ? 1 : 0;
  for (auto it = execs_.begin(); it != execs_.end() && ended > kKeptEndedExecs;) {
    if (it->second->state() == ExecState::exited) {
      it = execs_.erase(it);
      --ended;
    } else {
      ++it;
    }
  }
}

std::shared_ptr<ExecRecord> LiveSandbox::start_exec(const ExecRequest& request) {
  const RunRequest& limits = spec_.plan.request;
  ExecRecord::Options options;
  options.exec = program_exec(find_language(limits.language), limits, request.argv, request.env, request.cwd,
                              request.stdout_limit, request.stderr_limit, request.timeout_s);
  options.exec.tty = request.tty;
  options.exec.rows = static_cast<uint16_t>(request.rows);
  options.exec.cols = static_cast<uint16_t>(request.cols);
  options.argv = request.argv;
  options.background = request.background;
  // A caller that waits gets all its output (its limits); a background
  // exec keeps its last output for `logs`.
  options.keep_per_stream =
      request.background ? kKeptOutput : std::max(request.stdout_limit, request.stderr_limit);
  std::shared_ptr<GuestMux> mux;
  std::shared_ptr<ExecRecord> record;
  {
    std::lock_guard lock(mutex_);
    if (stopped_ || paused_ || !mux_) throw Error(ErrorCode::conflict, state_message());
    int running = 0;
    for (const auto& [number, exec] : execs_) running += exec->state() == ExecState::running ? 1 : 0;
    if (running >= kMaxRunningExecs) {
      throw Error(ErrorCode::overloaded, "sandbox " + id_ + " runs " + std::to_string(running) +
                                             " execs, its most; wait for one to end");
    }
    if (request.may_use_prestarted && prestarted_waiting_) {
      options.exec.prestarted = true;
      prestarted_waiting_ = false;
    }
    const uint64_t number = next_exec_++;
    options.id = "ex-" + std::to_string(number);
    record = std::make_shared<ExecRecord>(std::move(options));
    execs_.emplace(number, record);
    ++exec_count_;
    idle_since_ = SystemClock::now();
    forget_old_execs_locked();
    mux = mux_;
  }
  try {
    // A stdin fed from an fd stays open for the pump (run_exec).
    const bool keep_stdin_open = request.stdin_open || request.stdin_fd >= 0;
    record->start(mux, request.program_file ? &*request.program_file : nullptr, request.stdin_data,
                  keep_stdin_open);
  } catch (const Error& e) {
    record->abandon(e.what());
    throw;
  }
  return record;
}

RunResult LiveSandbox::run_exec(const ExecRequest& request, OutputSink* sink, const CancelToken* cancel) {
  std::shared_ptr<ExecRecord> record = start_exec(request);
  std::shared_ptr<GuestMux> mux;
  {
    std::lock_guard lock(mutex_);
    mux = mux_;
  }
  std::optional<StdinPump> pump;
  if (request.stdin_fd >= 0) pump.emplace(request.stdin_fd, record, mux);
  auto deadline = request.timeout_s > 0 ? record->started() + std::chrono::seconds(request.timeout_s)
                                        : SteadyClock::time_point::max();
  bool stopping = false;
  uint64_t next = 0;
  auto looked = SteadyClock::now();
  for (;;) {
    ExecRecord::Update update = record->read(next, kCancelPoll);
    next = update.next;
    if (sink) {
      for (const auto& chunk : update.chunks) {
        chunk.is_stdout ? sink->on_stdout(chunk.bytes) : sink->on_stderr(chunk.bytes);
      }
    }
    if (update.ended) break;
    const auto now = SteadyClock::now();
    {
      // A paused exec's time stands still, as its guest's clock does.
      std::lock_guard lock(mutex_);
      if (paused_ && deadline != SteadyClock::time_point::max()) deadline += now - looked;
    }
    looked = now;
    if (!stopping && cancel && cancel->cancelled()) {
      record->stop(*mux, ExecRecord::StopCause::cancelled);
      stopping = true;
      deadline = now + kStopGrace;
    } else if (now >= deadline) {
      if (stopping) {
        // The guest did not confirm in time; the VM is as it is.
        record->abandon("the guest did not end the exec when told to");
        continue;
      }
      record->stop(*mux, ExecRecord::StopCause::host_timeout);
      stopping = true;
      deadline = now + kStopGrace;
    }
  }
  RunResult result = result_of(*record);
  {
    std::lock_guard lock(mutex_);
    idle_since_ = SystemClock::now();
    if (stopped_ && result.status == RunStatus::killed) result.error = "the sandbox stopped: " + stop_reason_;
    forget_old_execs_locked();
  }
  record->trim(kKeptOutput);
  return result;
}

RunResult LiveSandbox::result_of(ExecRecord& record) const {
  ExecOutcome outcome = record.outcome();
  RunResult result = exec_result(outcome, record.exec());
  result.timing.execute_ms = static_cast<int64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(outcome.ended - outcome.started).count());
  // An exec in a live sandbox boots and sets up nothing: its whole time is its execution.
  result.timing.total_ms = result.timing.execute_ms;
  if (outcome.report) {
    const auto& report = *outcome.report;
    RunTrace trace;
    trace.exec_us =
        std::chrono::duration_cast<std::chrono::microseconds>(outcome.ended - outcome.started).count();
    trace.guest_start_us = static_cast<int64_t>(report.start_us);
    trace.guest_run_us = static_cast<int64_t>(report.run_us);
    trace.guest_end_us = static_cast<int64_t>(report.duration_us) - static_cast<int64_t>(report.run_us);
    result.timing.trace = trace;
  }
  result.accel = std::string(vmm::to_string(accel_));
  result.from_snapshot = from_snapshot_;
  std::lock_guard lock(mutex_);
  if (guest_) result.network_denied = guest_->network_denials();
  return result;
}

std::shared_ptr<ExecRecord> LiveSandbox::find_exec(const std::string& exec_id) const {
  std::lock_guard lock(mutex_);
  for (const auto& [number, exec] : execs_) {
    if (exec->id() == exec_id) return exec;
  }
  throw Error(ErrorCode::not_found, "no exec " + exec_id + " in sandbox " + id_ + " (the newest " +
                                        std::to_string(kKeptEndedExecs) + " ended execs are kept)");
}

std::vector<std::shared_ptr<ExecRecord>> LiveSandbox::execs() const {
  std::lock_guard lock(mutex_);
  std::vector<std::shared_ptr<ExecRecord>> all;
  for (const auto& [number, exec] : execs_) all.push_back(exec);
  return all;
}

void LiveSandbox::signal_exec(const std::string& exec_id, int number) {
  auto record = find_exec(exec_id);
  auto mux = live_mux();
  record->signal(*mux, number);
  touch();
}

void LiveSandbox::resize_exec(const std::string& exec_id, int rows, int cols) {
  auto record = find_exec(exec_id);
  if (!record->exec().tty) throw Error(ErrorCode::conflict, "exec " + exec_id + " has no terminal to resize");
  auto mux = live_mux();
  record->resize(*mux, static_cast<uint16_t>(rows), static_cast<uint16_t>(cols));
  touch();
}

void LiveSandbox::write_exec_stdin(const std::string& exec_id, std::string_view bytes, bool close) {
  auto record = find_exec(exec_id);
  auto mux = live_mux();
  record->write_stdin(*mux, bytes, close, SteadyClock::now() + std::chrono::seconds(60));
  touch();
}

void LiveSandbox::upload(const std::string& path, uint64_t size, uint32_t mode, const ContentReader& read) {
  operation([&](GuestMux& mux) {
    upload_file(mux, path, size, mode, read, kFileStall);
    return true;
  });
}

protocol::FileEnd LiveSandbox::download(const std::string& path, uint64_t max_bytes,
                                        const std::function<bool(std::string_view)>& on_data) {
  return operation([&](GuestMux& mux) {
    return download_file(mux, path, max_bytes, on_data, SteadyClock::now() + kFileTimeout);
  });
}

DirectoryListing LiveSandbox::list(const std::string& path, uint64_t max_entries) {
  return operation([&](GuestMux& mux) {
    return list_directory(mux, path, max_entries, SteadyClock::now() + std::chrono::seconds(60));
  });
}

protocol::DirEntry LiveSandbox::stat(const std::string& path) {
  return operation(
      [&](GuestMux& mux) { return describe_path(mux, path, SteadyClock::now() + std::chrono::seconds(60)); });
}

ArchiveCounts LiveSandbox::upload_archive(const std::string& directory, const ContentReader& read) {
  return operation([&](GuestMux& mux) { return unpack_archive(mux, directory, read, kFileStall); });
}

ArchiveCounts LiveSandbox::download_archive(const std::string& path,
                                            const std::function<bool(std::string_view)>& on_data) {
  return operation([&](GuestMux& mux) { return pack_archive(mux, path, on_data, kFileTimeout); });
}

void LiveSandbox::remove(const std::string& path) {
  operation([&](GuestMux& mux) {
    remove_path(mux, path, SteadyClock::now() + std::chrono::seconds(60));
    return true;
  });
}

PortInfo LiveSandbox::forward_port(uint16_t guest_port) {
  std::lock_guard lock(mutex_);
  if (stopped_ || paused_ || !mux_) throw Error(ErrorCode::conflict, state_message());
  if (auto it = ports_.find(guest_port); it != ports_.end()) {
    throw Error(ErrorCode::conflict,
                "port " + std::to_string(guest_port) + " of sandbox " + id_ +
                    " is forwarded already, from 127.0.0.1:" + std::to_string(it->second->host_port()));
  }
  if (ports_.size() >= kMaxPorts) {
    throw Error(ErrorCode::overloaded, "sandbox " + id_ + " has " + std::to_string(kMaxPorts) +
                                           " port forwards, its most; close one");
  }
  auto forward = std::make_unique<PortForward>(mux_, guest_port);
  PortInfo info{guest_port, forward->host_port(), 0};
  ports_.emplace(guest_port, std::move(forward));
  idle_since_ = SystemClock::now();
  return info;
}

std::vector<PortInfo> LiveSandbox::ports() const {
  std::lock_guard lock(mutex_);
  std::vector<PortInfo> all;
  for (const auto& [port, forward] : ports_)
    all.push_back({port, forward->host_port(), forward->connections()});
  return all;
}

void LiveSandbox::close_port(uint16_t guest_port) {
  std::unique_ptr<PortForward> forward;
  {
    std::lock_guard lock(mutex_);
    auto it = ports_.find(guest_port);
    if (it == ports_.end()) {
      throw Error(ErrorCode::not_found,
                  "port " + std::to_string(guest_port) + " of sandbox " + id_ + " is not forwarded");
    }
    forward = std::move(it->second);
    ports_.erase(it);
  }
  forward.reset();  // its connections end, outside the lock
}

void LiveSandbox::stop(const std::string& reason) {
  Remains remains = halt(reason);
  // The VM, its network and its directory go now, then its room in the budgets.
  remains.guest.reset();
  remains.room.reset();
  remains.reserved.reset();
  remains.origin.reset();
}

std::optional<ReadyGuest> LiveSandbox::stop_keeping_vm(const std::string& reason) {
  Remains remains = halt(reason);
  return std::move(remains.guest);
}

LiveSandbox::Remains LiveSandbox::halt(const std::string& reason) {
  std::lock_guard control(control_mutex_);
  std::map<uint16_t, std::unique_ptr<PortForward>> ports;
  std::shared_ptr<GuestMux> mux;
  std::vector<std::shared_ptr<ExecRecord>> running;
  Remains remains;
  {
    std::lock_guard lock(mutex_);
    if (stopped_) return remains;
    stopped_ = true;
    stop_reason_ = reason;
    stopped_at_ = SystemClock::now();
    for (const auto& [number, exec] : execs_) {
      if (exec->state() == ExecState::running) running.push_back(exec);
    }
    mux = std::move(mux_);
    ports.swap(ports_);
    remains.guest = std::move(guest_);
    guest_.reset();
    remains.room = std::move(room_);
    remains.reserved = std::move(reserved_);
    remains.origin = std::move(origin_);
  }
  ports.clear();  // the host ports close, and every connection through them
  // Every exec in progress ends as killed, with the reason, before the VM goes.
  for (auto& exec : running) {
    if (mux) exec->stop(*mux, ExecRecord::StopCause::sandbox_stopped);
    exec->abandon("the sandbox stopped: " + reason);
  }
  if (mux) mux->shutdown("the sandbox stopped: " + reason);
  return remains;
}

std::optional<std::string> LiveSandbox::due() {
  std::vector<std::shared_ptr<ExecRecord>> overdue;
  std::shared_ptr<GuestMux> mux;
  {
    std::lock_guard lock(mutex_);
    if (stopped_) return std::nullopt;
    const auto now = SystemClock::now();
    if (now >= created_ + std::chrono::seconds(spec_.ttl_s)) {
      return "its ttl of " + std::to_string(spec_.ttl_s) + " s passed";
    }
    if (mux_) {
      if (auto broken = mux_->broken()) return "its VM stopped: " + *broken;
    }
    const SandboxState state = state_locked();
    // Its execs' clocks stand still with the guest's.
    if (state == SandboxState::paused) return std::nullopt;
    // A sandbox with an exec in progress is not idle, whatever its caller does.
    if (state == SandboxState::busy) idle_since_ = now;
    if (state == SandboxState::ready && now >= idle_since_ + std::chrono::seconds(spec_.idle_timeout_s)) {
      return "idle for " + std::to_string(spec_.idle_timeout_s) + " s (its idle timeout)";
    }
    // The guest ends an exec at its own timeout; one it did not end is ended here.
    const auto steady_now = SteadyClock::now();
    for (const auto& [number, exec] : execs_) {
      const uint64_t timeout_ms = exec->exec().timeout_ms;
      if (exec->background() && timeout_ms > 0 && exec->state() == ExecState::running &&
          steady_now >=
              exec->started() + std::chrono::milliseconds(timeout_ms) + 2 * kStopGrace + paused_total_) {
        overdue.push_back(exec);
      }
    }
    mux = mux_;
  }
  for (auto& exec : overdue) {
    exec->stop(*mux, ExecRecord::StopCause::host_timeout);
    if (!exec->wait_until_ended(SteadyClock::now() + kStopGrace)) {
      exec->abandon("the guest did not end the exec at its timeout");
    }
  }
  return std::nullopt;
}

std::shared_ptr<SnapshotStore::Use> LiveSandbox::origin() const {
  std::lock_guard lock(mutex_);
  return origin_;
}

bool LiveSandbox::forgettable() const {
  std::lock_guard lock(mutex_);
  return stopped_ && SystemClock::now() - stopped_at_ > kStoppedRetention;
}

bool LiveSandbox::live() const {
  std::lock_guard lock(mutex_);
  return !stopped_;
}

}  // namespace airlock::engine
