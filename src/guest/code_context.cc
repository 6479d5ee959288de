#include "guest/code_context.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/io.h"
#include "guest/exec_cgroup.h"
#include "guest/program_runner.h"

namespace airlock::guest {

using protocol::FrameType;

namespace {

int64_t wall_clock_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string describe_end(int status) {
  if (WIFEXITED(status)) return "its interpreter exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    const char* name = ::sigabbrev_np(WTERMSIG(status));
    return "its interpreter was killed by signal " + std::to_string(WTERMSIG(status)) +
           (name ? std::string(" (SIG") + name + ")" : "");
  }
  return "its interpreter ended";
}

}  // namespace

struct CodeContexts::Context {
  enum class State { starting, idle, busy, dead };
  static const char* name_of(State state) {
    switch (state) {
      case State::starting: return "starting";
      case State::idle: return "idle";
      case State::busy: return "busy";
      case State::dead: return "dead";
    }
    return "dead";
  }

  // One cell in progress, on its stream.
  struct Cell {
    uint32_t stream = 0;
    bool detached = false;  // its host is gone: nothing more is sent
    Clock::time_point started;
    Clock::time_point deadline = Clock::time_point::max();
    std::optional<Clock::time_point> kill_at;  // interrupted at its deadline; killed then
    bool timed_out = false;
    uint64_t limit[2] = {0, 0};  // stdout, stderr
    uint64_t sent[2] = {0, 0};
    bool truncated[2] = {false, false};
  };

  protocol::ContextStart request;  // how it was started: a restart starts it so again
  Program program;
  State state = State::starting;
  Clock::time_point start_deadline;
  bool ever_ready = false;                 // one that never was is removed when it dies (a start that failed)
  std::optional<uint32_t> waiting_stream;  // the start or restart answered once it is ready
  std::string control_input;               // what the interpreter said, up to a newline
  std::string control_output;              // the job line not written yet
  std::optional<Cell> cell;
  uint64_t execution_count = 0;
  int64_t started_at_ms = 0;
  std::string reason;      // why it is dead
  std::string last_words;  // its stderr while it started (the last 2 KiB)
  bool output_open[2] = {false, false};
  bool control_open = false;
  size_t poll_index = 0;
  bool polled = false;

  protocol::ContextInfo info() const {
    protocol::ContextInfo info;
    info.context = request.context;
    info.language = request.language;
    info.state = name_of(state);
    info.execution_count = execution_count;
    info.pid = state == State::dead ? 0 : program.pid;
    info.started_at_ms = started_at_ms;
    info.reason = reason;
    return info;
  }
  int output_fd(int which) const {
    return output_open[which] ? (which == 0 ? program.stdout_read.get() : program.stderr_read.get()) : -1;
  }
};

CodeContexts::CodeContexts(Channel& channel, std::function<void(const protocol::Exec&)> prepare)
    : channel_(channel), prepare_(std::move(prepare)) {}

CodeContexts::~CodeContexts() {
  for (auto& [name, context] : contexts_) kill_interpreter(*context);
}

bool CodeContexts::handles(FrameType type) {
  return type == FrameType::context_start || type == FrameType::context_run ||
         type == FrameType::context_control;
}

void CodeContexts::on_frame(const protocol::Frame& frame) {
  try {
    switch (frame.type) {
      case FrameType::context_start: start(frame); break;
      case FrameType::context_run: run(frame); break;
      case FrameType::context_control: control(frame); break;
      default: break;
    }
  } catch (const Error& e) {
    if (e.code() == ErrorCode::protocol) throw;
    refuse(frame.stream, e.what());
  }
}

void CodeContexts::refuse(uint32_t stream, const std::string& message) {
  channel_.send(FrameType::error, stream, protocol::ErrorReport{message}.to_payload());
}

void CodeContexts::answer(uint32_t stream, const std::vector<const Context*>& contexts) {
  protocol::ContextList list;
  for (const Context* context : contexts) list.contexts.push_back(context->info());
  channel_.send(FrameType::context_info, stream, list.to_payload());
}

CodeContexts::Context* CodeContexts::find(const std::string& name, uint32_t stream) {
  auto it = contexts_.find(name);
  if (it != contexts_.end()) return it->second.get();
  refuse(stream, "no code context '" + name + "' in this sandbox");
  return nullptr;
}

void CodeContexts::spawn(Context& context) {
  prepare_(context.request.exec);
  context.program = start_program(context.request.exec, /*with_control=*/true, ExecCgroup::create("context"));
  // Nothing to read: input() in a cell ends at once (EOFError), never hangs.
  context.program.stdin_write.reset();
  set_nonblocking(context.program.control.get());
  context.state = Context::State::starting;
  context.start_deadline = Clock::now() + kStartTimeout;
  context.control_input.clear();
  context.control_output.clear();
  context.cell.reset();
  context.execution_count = 0;
  context.started_at_ms = wall_clock_ms();
  context.reason.clear();
  context.last_words.clear();
  context.output_open[0] = context.output_open[1] = true;
  context.control_open = true;
}

void CodeContexts::kill_interpreter(Context& context) {
  if (context.state == Context::State::dead || context.program.pid <= 0) return;
  if (context.program.cgroup.valid()) {
    context.program.cgroup.kill_all();
  } else {
    ::kill(-context.program.pid, SIGKILL);
    ::kill(context.program.pid, SIGKILL);
  }
}

void CodeContexts::start(const protocol::Frame& frame) {
  auto request = protocol::ContextStart::parse(frame.payload);
  if (contexts_.count(request.context)) {
    return refuse(frame.stream, "a code context '" + request.context + "' exists already in this sandbox");
  }
  if (contexts_.size() >= kMaxContexts) {
    return refuse(frame.stream, "this sandbox has " + std::to_string(kMaxContexts) +
                                    " code contexts, its most; delete one first");
  }
  auto context = std::make_unique<Context>();
  context->request = std::move(request);
  spawn(*context);
  context->waiting_stream = frame.stream;
  const std::string name = context->request.context;
  contexts_.emplace(name, std::move(context));
}

void CodeContexts::run(const protocol::Frame& frame) {
  auto request = protocol::ContextRun::parse(frame.payload);
  Context* context = find(request.context, frame.stream);
  if (!context) return;
  const std::string& name = request.context;
  switch (context->state) {
    case Context::State::starting:
      return refuse(frame.stream, "code context '" + name + "' is still starting");
    case Context::State::busy:
      return refuse(frame.stream,
                    "code context '" + name + "' is running a cell; wait for it, or interrupt it");
    case Context::State::dead:
      return refuse(frame.stream,
                    "code context '" + name + "' is dead (" + context->reason + "); restart it");
    case Context::State::idle: break;
  }
  Context::Cell cell;
  cell.stream = frame.stream;
  cell.started = Clock::now();
  if (request.timeout_ms > 0) cell.deadline = cell.started + std::chrono::milliseconds(request.timeout_ms);
  cell.limit[0] = request.stdout_limit;
  cell.limit[1] = request.stderr_limit;
  context->cell = cell;
  context->state = Context::State::busy;
  context->control_output =
      nlohmann::json{{"code", request.code}}.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) +
      "\n";
}

void CodeContexts::control(const protocol::Frame& frame) {
  auto request = protocol::ContextControl::parse(frame.payload);
  if (request.action == "list") {
    std::vector<const Context*> all;
    for (const auto& [name, context] : contexts_) all.push_back(context.get());
    return answer(frame.stream, all);
  }
  Context* context = find(request.context, frame.stream);
  if (!context) return;
  if (request.action == "interrupt") {
    if (context->state == Context::State::busy) ::kill(context->program.pid, SIGINT);
    return answer(frame.stream, {context});
  }
  const std::string done = request.action == "stop" ? "the context was stopped" : "the context was restarted";
  if (context->cell) finish_cell(*context, "died", context->execution_count, done);
  if (context->waiting_stream) refuse(*context->waiting_stream, done);
  context->waiting_stream.reset();
  kill_interpreter(*context);
  if (request.action == "stop") {
    context->state = Context::State::dead;
    protocol::ContextInfo info = context->info();
    info.state = "stopped";
    contexts_.erase(request.context);  // its cgroup goes with it
    protocol::ContextList list;
    list.contexts.push_back(info);
    return channel_.send(FrameType::context_info, frame.stream, list.to_payload());
  }
  // restart: a new interpreter, answered once it is ready. The old one is
  // reaped as an orphan (its pid names no context any more).
  spawn(*context);
  context->waiting_stream = frame.stream;
}

bool CodeContexts::on_cancel(uint32_t stream) {
  for (auto& [name, context] : contexts_) {
    // A cell of a snapshot's source runs on under its old stream number,
    // which the new host may use again for something else.
    if (context->cell && !context->cell->detached && context->cell->stream == stream) {
      context->cell->detached = true;
      if (context->state == Context::State::busy) ::kill(context->program.pid, SIGINT);
      return true;
    }
  }
  return false;
}

void CodeContexts::add_to_poll(std::vector<pollfd>& fds) {
  for (auto& [name, context] : contexts_) {
    context->polled = context->state != Context::State::dead;
    if (!context->polled) continue;
    context->poll_index = fds.size();
    const short control_events = POLLIN | (context->control_output.empty() ? 0 : POLLOUT);
    fds.push_back({context->control_open ? context->program.control.get() : -1, control_events, 0});
    fds.push_back({context->output_fd(0), POLLIN, 0});
    fds.push_back({context->output_fd(1), POLLIN, 0});
  }
}

void CodeContexts::handle_poll(const std::vector<pollfd>& fds) {
  for (auto& [name, context] : contexts_) {
    if (!context->polled || context->state == Context::State::dead) continue;
    const pollfd* mine = &fds[context->poll_index];
    if (!context->control_output.empty() && (mine[0].revents & (POLLOUT | POLLERR | POLLHUP))) {
      const ssize_t n = ::write(context->program.control.get(), context->control_output.data(),
                                context->control_output.size());
      if (n > 0) context->control_output.erase(0, static_cast<size_t>(n));
      if (n < 0 && errno != EAGAIN && errno != EINTR) {
        context->control_output.clear();  // EPIPE: it closed its end; read_control sees the EOF
      }
    }
    // Output first: an event read below drains the pipes anyway.
    if ((mine[1].revents | mine[2].revents) & (POLLIN | POLLHUP | POLLERR)) drain_output(*context);
    if (mine[0].revents & (POLLIN | POLLHUP | POLLERR)) read_control(*context);
  }
  forget_failed_starts();
}

void CodeContexts::drain_output(Context& context) {
  char buffer[16 * 1024];
  for (int which = 0; which < 2; ++which) {
    while (context.output_open[which]) {
      auto n = read_some(context.output_fd(which), buffer, sizeof buffer);
      if (!n) break;  // nothing more now
      if (*n == 0) {
        context.output_open[which] = false;
        break;
      }
      forward_output(context, which, std::string_view(buffer, *n));
    }
  }
}

void CodeContexts::forward_output(Context& context, int which, std::string_view bytes) {
  if (context.state == Context::State::starting && which == 1) {
    context.last_words.append(bytes);
    if (context.last_words.size() > 2048) context.last_words.erase(0, context.last_words.size() - 2048);
  }
  // Between cells (a thread still printing) there is nobody to tell.
  if (!context.cell || context.cell->detached) return;
  auto& cell = *context.cell;
  const uint64_t room = cell.limit[which] - std::min(cell.limit[which], cell.sent[which]);
  if (bytes.size() > room) cell.truncated[which] = true;
  bytes = bytes.substr(0, static_cast<size_t>(room));
  cell.sent[which] += bytes.size();
  const FrameType type = which == 0 ? FrameType::stdout_data : FrameType::stderr_data;
  for (size_t at = 0; at < bytes.size(); at += protocol::kDataChunk) {
    channel_.send(type, cell.stream, bytes.substr(at, protocol::kDataChunk));
  }
}

void CodeContexts::read_control(Context& context) {
  if (!context.control_open) return;  // all of it was read
  char buffer[64 * 1024];
  for (;;) {
    auto n = read_some(context.program.control.get(), buffer, sizeof buffer);
    if (!n) return;
    if (*n == 0) {
      // It closed its socket (it ended, or a cell closed fd 3): nothing more
      // can be said to it, so it ends; its exit is reaped.
      context.control_open = false;
      kill_interpreter(context);
      return;
    }
    context.control_input.append(buffer, *n);
    size_t newline;
    while ((newline = context.control_input.find('\n')) != std::string::npos) {
      std::string line = context.control_input.substr(0, newline);
      context.control_input.erase(0, newline + 1);
      take_line(context, line);
      if (context.state == Context::State::dead) return;
    }
    if (context.control_input.size() > kMaxEventBytes) {
      kill_interpreter(context);
      die(context, "it sent an event over " + std::to_string(kMaxEventBytes >> 20) + " MiB");
      return;
    }
  }
}

void CodeContexts::take_line(Context& context, const std::string& line) {
  // The interpreter runs the user's code, which may write to its socket:
  // anything but an object with a string `type` ends the context.
  const nlohmann::json event = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  const bool typed = event.is_object() && event.contains("type") && event["type"].is_string();
  const std::string type = typed ? event["type"].get<std::string>() : "";
  if (type.empty()) {
    kill_interpreter(context);
    die(context, "its interpreter broke the context protocol");
    return;
  }
  if (type == "ready") {
    if (context.state != Context::State::starting) return;
    context.state = Context::State::idle;
    context.ever_ready = true;
    if (context.waiting_stream) answer(*context.waiting_stream, {&context});
    context.waiting_stream.reset();
    return;
  }
  if (!context.cell) return;  // an event between cells: nobody asked
  drain_output(context);
  if (type == "done") {
    // Only the cell's own: a line a cell wrote to the socket itself, or a
    // late one, names no count or another.
    const bool counted = event.contains("execution_count") && event["execution_count"].is_number_unsigned() &&
                         event["execution_count"].get<uint64_t>() == context.execution_count + 1;
    if (!counted) return;
    const std::string status = event.contains("status") && event["status"].is_string()
                                   ? event["status"].get<std::string>()
                                   : "error";
    finish_cell(context, context.cell->timed_out ? "timeout" : status, context.execution_count + 1, "");
    return;
  }
  if (context.cell->detached) return;
  std::string whole = line + "\n";
  for (size_t at = 0; at < whole.size(); at += protocol::kDataChunk) {
    channel_.send(FrameType::context_event, context.cell->stream,
                  std::string_view(whole).substr(at, protocol::kDataChunk));
  }
}

void CodeContexts::finish_cell(Context& context, const std::string& status, uint64_t execution_count,
                               const std::string& reason) {
  auto& cell = *context.cell;
  context.execution_count = execution_count;
  if (!cell.detached) {
    protocol::ContextDone done;
    done.status = status == "ok" || status == "error" || status == "interrupted" || status == "timeout" ||
                          status == "died"
                      ? status
                      : "error";
    done.execution_count = execution_count;
    done.duration_us = static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - cell.started).count());
    done.stdout_truncated = cell.truncated[0];
    done.stderr_truncated = cell.truncated[1];
    done.reason = reason;
    channel_.send(FrameType::context_done, cell.stream, done.to_payload());
  }
  context.cell.reset();
  if (context.state == Context::State::busy) context.state = Context::State::idle;
}

void CodeContexts::die(Context& context, const std::string& reason) {
  if (context.state == Context::State::dead) return;
  drain_output(context);
  const bool timed_out = context.cell && context.cell->timed_out;
  if (context.cell) finish_cell(context, timed_out ? "timeout" : "died", context.execution_count, reason);
  if (context.waiting_stream) {
    refuse(*context.waiting_stream, "the " + context.request.language + " context '" +
                                        context.request.context + "' did not start: " + reason +
                                        (context.last_words.empty() ? "" : ": " + context.last_words));
    context.waiting_stream.reset();
  }
  context.state = Context::State::dead;
  context.reason = reason;
  // What it started dies with it; its pipes are not polled any more.
  context.control_open = false;
  context.program.cgroup.kill_all();
  context.program.control.reset();
  context.program.stdout_read.reset();
  context.program.stderr_read.reset();
  context.output_open[0] = context.output_open[1] = false;
}

bool CodeContexts::reap(pid_t pid, int status) {
  for (auto& [name, context] : contexts_) {
    if (context->state == Context::State::dead || context->program.pid != pid) continue;
    std::string reason = describe_end(status);
    if (context->program.cgroup.valid() && context->program.cgroup.oom_kills() > 0) {
      reason = "it ran out of memory (" + reason + ")";
    } else if (context->cell && context->cell->timed_out) {
      reason = "its cell did not stop within " + std::to_string(kInterruptGrace.count()) +
               " s of the interrupt at its timeout, so its interpreter was killed";
    }
    // What it said before it went, in order.
    read_control(*context);
    die(*context, reason);
    forget_failed_starts();
    return true;
  }
  return false;
}

void CodeContexts::forget_failed_starts() {
  // A start that failed leaves nothing behind: its error said why.
  for (auto it = contexts_.begin(); it != contexts_.end();) {
    const bool failed = it->second->state == Context::State::dead && !it->second->ever_ready;
    it = failed ? contexts_.erase(it) : std::next(it);
  }
}

CodeContexts::Clock::time_point CodeContexts::wake_at() const {
  auto wake = Clock::time_point::max();
  for (const auto& [name, context] : contexts_) {
    if (context->state == Context::State::starting) wake = std::min(wake, context->start_deadline);
    if (!context->cell) continue;
    wake = std::min(wake, context->cell->kill_at ? *context->cell->kill_at : context->cell->deadline);
  }
  return wake;
}

void CodeContexts::on_time(Clock::time_point now) {
  for (auto& [name, context] : contexts_) {
    if (context->state == Context::State::starting && now >= context->start_deadline) {
      kill_interpreter(*context);
      die(*context,
          "its interpreter did not become ready in " + std::to_string(kStartTimeout.count()) + " s");
      continue;
    }
    if (!context->cell) continue;
    auto& cell = *context->cell;
    if (!cell.timed_out && now >= cell.deadline) {
      cell.timed_out = true;
      cell.kill_at = now + kInterruptGrace;
      ::kill(context->program.pid, SIGINT);
    } else if (cell.kill_at && now >= *cell.kill_at) {
      cell.kill_at.reset();
      cell.deadline = Clock::time_point::max();
      kill_interpreter(*context);  // reaped: the cell ends as timeout, the context dead
    }
  }
  forget_failed_starts();
}

void CodeContexts::become_copy() {
  for (auto& [name, context] : contexts_) {
    if (context->cell) context->cell->detached = true;
    context->waiting_stream.reset();
  }
}

}  // namespace airlock::guest
