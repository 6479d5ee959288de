// airlock-agent: PID 1 of every Airlock guest. It prepares the guest, says
// hello to the host over the virtio-serial port named "airlock", then serves
// requests (write_file, exec) until the host goes away. See docs/protocol.md.

#include <fcntl.h>
#include <linux/random.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/reboot.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/io.h"
#include "guest/channel.h"
#include "guest/code_context.h"
#include "guest/exec_cgroup.h"
#include "guest/file_transfer.h"
#include "guest/file_writer.h"
#include "guest/identity.h"
#include "guest/interpreter_job.h"
#include "guest/network_setup.h"
#include "guest/port_relay.h"
#include "guest/program_runner.h"
#include "guest/running_exec.h"
#include "guest/shares.h"
#include "guest/system_setup.h"
#include "protocol/messages.h"

#ifndef AIRLOCK_VERSION
#define AIRLOCK_VERSION "unknown"
#endif

namespace airlock::guest {
namespace {

using protocol::FrameType;

void log_line(const std::string& line) {
  std::string text = "airlock-agent: " + line + "\n";
  ssize_t ignored = ::write(2, text.data(), text.size());
  (void)ignored;
}

void open_console() {
  int fd = ::open("/dev/console", O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (fd < 0) return;
  ::dup2(fd, 0);
  ::dup2(fd, 1);
  ::dup2(fd, 2);
  if (fd > 2) ::close(fd);
}

// A guest can only end itself by resetting: with QEMU's -no-reboot that makes
// QEMU exit, which the host sees at once.
[[noreturn]] void halt_vm() {
  ::sync();
  ::reboot(RB_AUTOBOOT);
  for (;;) ::pause();
}

void harden_kernel() {
  // Refuse symlinks and hard links that a program could plant for the agent.
  const char* settings[][2] = {{"/proc/sys/fs/protected_symlinks", "1"},
                               {"/proc/sys/fs/protected_hardlinks", "1"},
                               {"/proc/sys/kernel/kptr_restrict", "2"},
                               {"/proc/sys/kernel/dmesg_restrict", "1"}};
  for (auto& setting : settings) {
    try {
      write_file(setting[0], setting[1]);
    } catch (const Error&) {
      // Not every kernel has every knob; none of them is essential.
    }
  }
}

// A clone wakes up with the template's RNG state and clock (and a guest
// that was paused, with its clock behind). Mix in the host's fresh entropy
// and force a CRNG reseed so no two clones (or a clone and its template) ever
// hand out the same random bytes, then set the clock.
void refresh_clock_and_entropy(const protocol::Resume& resume) {
  timespec now{static_cast<time_t>(resume.realtime_ns / 1'000'000'000),
               static_cast<long>(resume.realtime_ns % 1'000'000'000)};
  if (::clock_settime(CLOCK_REALTIME, &now) < 0) throw_errno("clock_settime");
  UniqueFd random(::open("/dev/random", O_WRONLY | O_CLOEXEC));
  if (!random) throw_errno("open", "/dev/random");
  std::vector<char> buffer(sizeof(rand_pool_info) + resume.entropy.size());
  auto* pool = reinterpret_cast<rand_pool_info*>(buffer.data());
  pool->entropy_count = static_cast<int>(resume.entropy.size() * 8);
  pool->buf_size = static_cast<int>(resume.entropy.size());
  std::memcpy(pool->buf, resume.entropy.data(), resume.entropy.size());
  if (::ioctl(random.get(), RNDADDENTROPY, pool) < 0) throw_errno("ioctl(RNDADDENTROPY)");
  if (::ioctl(random.get(), RNDRESEEDCRNG) < 0) throw_errno("ioctl(RNDRESEEDCRNG)");
}

// Reads one line (without its newline) from a prestarted interpreter's
// control socket; nullopt if it closes it, says too much, or stays silent
// for timeout_ms.
std::optional<std::string> read_control_line(int control, int timeout_ms) {
  std::string said;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (said.find('\n') == std::string::npos) {
    auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0 || said.size() > 256) return std::nullopt;
    pollfd p{control, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
    char buffer[64];
    ssize_t n = ::read(control, buffer, sizeof buffer);
    if (n <= 0) return std::nullopt;
    said.append(buffer, static_cast<size_t>(n));
  }
  said.resize(said.find('\n'));
  return said;
}

// What is in a pipe now, without waiting (at most `max` bytes kept).
std::string drain(int fd, size_t max) {
  std::string data;
  char buffer[4096];
  while (auto n = read_some(fd, buffer, sizeof buffer)) {
    if (*n == 0) break;
    if (data.size() < max) data.append(buffer, std::min(*n, max - data.size()));
  }
  return data;
}

// Kills a prestarted interpreter that failed, and says why, in its last words.
void fail_prestarted(Channel& channel, uint32_t stream, Program& program, const std::string& what) {
  ::kill(program.pid, SIGKILL);
  ::waitpid(program.pid, nullptr, 0);
  std::string last_words = drain(program.stderr_read.get(), 2048);
  channel.send(FrameType::error, stream,
               protocol::ErrorReport{what + (last_words.empty() ? "" : ": " + last_words)}.to_payload());
}

void prestart(Channel& channel, const protocol::Frame& frame, std::optional<Program>& slot) {
  auto request = protocol::Exec::parse(frame.payload);
  // Born in a cgroup of its own, which goes with it to the exec that takes it.
  Program program = start_program(request, /*with_control=*/true, ExecCgroup::create("prestarted"));
  // "ready" once it has imported what it imports and blocks waiting for a job.
  if (read_control_line(program.control.get(), 60'000) != "ready") {
    fail_prestarted(channel, frame.stream, program, "the prestarted interpreter did not become ready");
    return;
  }
  program.job_format = request.job_format;
  slot = std::move(program);
  channel.send(FrameType::prestarted, frame.stream, "{}");
}

// Runs our warm-up program in the prestarted interpreter, which then waits
// for the real program again. What the warm-up printed is read and dropped
// here, so none of it can reach the request's output.
void warm(Channel& channel, const protocol::Frame& frame, std::optional<Program>& slot) {
  auto request = protocol::Exec::parse(frame.payload);
  if (!slot) {
    channel.send(FrameType::error, frame.stream,
                 protocol::ErrorReport{"no prestarted interpreter to warm in this VM"}.to_payload());
    return;
  }
  write_all(slot->control.get(), job_line(request, /*warm=*/true, slot->job_format));
  auto said = read_control_line(slot->control.get(),
                                static_cast<int>(std::min<uint64_t>(request.timeout_ms, 600'000)));
  drain(slot->stdout_read.get(), 0);
  if (said != "warmed 0") {
    fail_prestarted(channel, frame.stream, *slot, "the warm-up failed (" + said.value_or("no answer") + ")");
    slot.reset();
    return;
  }
  drain(slot->stderr_read.get(), 0);
  // The warm-up's code file goes: a sandbox made from this guest starts
  // with a home of its own, and a run writes its own code file anyway.
  ::unlink((std::string(kRootfsMount) + job_code_path(request, slot->job_format)).c_str());
  channel.send(FrameType::warmed, frame.stream, "{}");
}

// Hands the program to the prestarted interpreter, which becomes it.
// Its cgroup, where it was born, becomes the exec's.
Program take_prestarted(std::optional<Program>& slot, const protocol::Exec& request) {
  if (!slot) throw Error(ErrorCode::invalid_argument, "no prestarted interpreter in this VM");
  Program program = std::move(*slot);
  slot.reset();
  if (!apply_program_limits(program.pid, request)) {
    ::kill(program.pid, SIGKILL);
    throw_errno("prlimit", "the prestarted interpreter");
  }
  write_all(program.control.get(), job_line(request, /*warm=*/false, program.job_format));
  return program;
}

// Runs one set-up step the host asked for and answers `done`, or an error
// frame naming what failed; only a protocol violation ends the agent.
template <typename Step>
void set_up(Channel& channel, const protocol::Frame& frame, FrameType done, Step step) {
  try {
    step();
    channel.send(done, frame.stream, "{}");
  } catch (const Error& e) {
    if (e.code() == ErrorCode::protocol) throw;
    channel.send(FrameType::error, frame.stream, protocol::ErrorReport{e.what()}.to_payload());
  }
}

// Serves the host's requests, any number at once: execs, uploads and
// downloads each live on their own stream, and one poll loop moves all of
// them along. Set-up steps (prestart, warm, mount, network) are brief and
// come before any exec, so they are served in line.
class Agent {
 public:
  Agent(Channel& channel, std::string root_device)
      : channel_(channel),
        root_device_(std::move(root_device)),
        contexts_(channel, [this](const protocol::Exec& exec) { apply_disk_limit(exec); }) {
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    child_signals_ = UniqueFd(::signalfd(-1, &chld, SFD_NONBLOCK | SFD_CLOEXEC));
    if (!child_signals_) throw_errno("signalfd");
  }

  void serve() {
    std::vector<pollfd> fds;
    bool host_open = true;
    while (host_open) {
      // Frames decoded so far, before the poll set is built: an exec they
      // start is then polled with the others.
      while (auto frame = channel_.next_view()) {
        // A file's bytes go to its file from where the channel holds them.
        if (frame->type == FrameType::file_data) {
          take_file_data(frame->stream, frame->payload);
        } else {
          dispatch(frame->to_frame());
        }
      }
      fds.clear();
      fds.push_back({channel_.fd(), POLLIN, 0});
      fds.push_back({child_signals_.get(), POLLIN, 0});
      auto wake = RunningExec::Clock::time_point::max();
      for (auto& [stream, exec] : execs_) {
        exec->add_to_poll(fds);
        wake = std::min(wake, exec->wake_at());
      }
      for (auto& [stream, port] : ports_) port->add_to_poll(fds);
      contexts_.add_to_poll(fds);
      wake = std::min(wake, contexts_.wake_at());
      bool downloads_ready = false;
      for (auto& [stream, download] : downloads_) downloads_ready = downloads_ready || download.can_send();
      int timeout = -1;
      if (downloads_ready) {
        timeout = 0;
      } else if (wake != RunningExec::Clock::time_point::max()) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(wake - RunningExec::Clock::now());
        timeout = static_cast<int>(std::clamp<int64_t>(left.count() + 1, 0, 60'000));
      }
      if (::poll(fds.data(), fds.size(), timeout) < 0 && errno != EINTR) throw_errno("poll");

      if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
        // POLLHUP with nothing readable: the host end is closed.
        host_open = channel_.pump() && !((fds[0].revents & POLLHUP) && !(fds[0].revents & POLLIN));
      }
      for (auto& [stream, exec] : execs_) exec->handle_poll(fds);
      for (auto& [stream, port] : ports_) port->handle_poll(fds);
      contexts_.handle_poll(fds);
      for (auto it = ports_.begin(); it != ports_.end();)
        it = it->second->done() ? ports_.erase(it) : std::next(it);
      if (fds[1].revents & POLLIN) {
        signalfd_siginfo info;
        while (::read(child_signals_.get(), &info, sizeof info) > 0) {
        }
      }
      reap_children();
      const auto now = RunningExec::Clock::now();
      contexts_.on_time(now);
      for (auto it = execs_.begin(); it != execs_.end();) {
        it->second->on_time(now);
        it = it->second->finish_if_done() ? execs_.erase(it) : std::next(it);
      }
      for (auto it = downloads_.begin(); it != downloads_.end();) {
        it = it->second.can_send() && it->second.step() ? downloads_.erase(it) : std::next(it);
      }
    }
    for (auto& [stream, exec] : execs_) exec->abandon();
  }

 private:
  // The program of an exec, or an orphan re-parented to PID 1.
  void reap_children() {
    bool reaped = false;
    for (;;) {
      int status = 0;
      pid_t pid = ::waitpid(-1, &status, WNOHANG);
      if (pid <= 0) break;
      reaped = true;
      if (contexts_.reap(pid, status)) continue;
      for (auto& [stream, exec] : execs_) {
        if (exec->reap(pid, status)) break;
      }
    }
    if (reaped) remove_empty_exec_cgroups();
  }

  void take_file_data(uint32_t stream, std::string_view data) {
    auto it = uploads_.find(stream);
    if (it == uploads_.end()) throw Error(ErrorCode::protocol, "file_data without a write_file");
    if (it->second.on_data(data)) uploads_.erase(it);
  }

  void dispatch(const protocol::Frame& frame) {
    switch (frame.type) {
      case FrameType::write_file: {
        uploads_.erase(frame.stream);
        auto [it, added] = uploads_.try_emplace(frame.stream, channel_, frame);
        if (it->second.complete()) uploads_.erase(it);
        break;
      }
      case FrameType::file_data: take_file_data(frame.stream, frame.payload); break;
      case FrameType::list_dir: send_listing(channel_, frame); break;
      case FrameType::remove_file: remove_file(channel_, frame); break;
      case FrameType::stat: describe_path(channel_, frame); break;
      case FrameType::make_node: make_node(channel_, frame); break;
      case FrameType::read_file:
        downloads_.erase(frame.stream);
        downloads_.try_emplace(frame.stream, channel_, frame);
        break;
      case FrameType::file_ack: {
        auto it = downloads_.find(frame.stream);
        if (it != downloads_.end()) it->second.on_ack(protocol::FileAck::parse(frame.payload).bytes);
        break;  // or late: the download already ended
      }
      case FrameType::resume: resume(frame); break;
      case FrameType::quiesce: hold_for_snapshot(frame); break;
      case FrameType::mount:
        set_up(channel_, frame, FrameType::mounted,
               [&] { mount_shares(protocol::MountShares::parse(frame.payload)); });
        break;
      case FrameType::network_setup:
        set_up(channel_, frame, FrameType::network_ready,
               [&] { configure_network(protocol::NetworkSetup::parse(frame.payload)); });
        break;
      case FrameType::prestart:
      case FrameType::warm:
        // A failure here (an interpreter that died, a pipe that broke) fails
        // this request, not the agent.
        try {
          if (frame.type == FrameType::prestart) {
            prestart(channel_, frame, prestarted_);
          } else {
            warm(channel_, frame, prestarted_);
          }
        } catch (const Error& e) {
          if (e.code() == ErrorCode::protocol) throw;
          prestarted_.reset();
          channel_.send(FrameType::error, frame.stream, protocol::ErrorReport{e.what()}.to_payload());
        }
        break;
      case FrameType::exec: start_exec(frame); break;
      case FrameType::context_start:
      case FrameType::context_run:
      case FrameType::context_control: contexts_.on_frame(frame); break;
      case FrameType::port_open: {
        auto relay = std::make_unique<PortRelay>(channel_, frame);
        if (!relay->done()) ports_[frame.stream] = std::move(relay);
        break;
      }
      case FrameType::port_data:
      case FrameType::port_ack:
      case FrameType::port_close: {
        auto it = ports_.find(frame.stream);
        if (it != ports_.end()) it->second->on_frame(frame);
        break;  // or late frames for a connection that ended
      }
      case FrameType::cancel:
        // A file transfer or a connection the host gave up on; or an exec to end, below.
        uploads_.erase(frame.stream);
        downloads_.erase(frame.stream);
        ports_.erase(frame.stream);
        if (contexts_.on_cancel(frame.stream)) break;
        [[fallthrough]];
      case FrameType::stdin_data:
      case FrameType::stdin_close:
      case FrameType::resize:
      case FrameType::signal: {
        auto it = execs_.find(frame.stream);
        if (it != execs_.end()) it->second->on_frame(frame);
        break;  // or late frames for an exec that already ended
      }
      default:
        throw Error(ErrorCode::protocol, "unexpected frame " + std::string(protocol::to_string(frame.type)));
    }
  }

  void resume(const protocol::Frame& frame) {
    auto request = protocol::Resume::parse(frame.payload);
    refresh_clock_and_entropy(request);
    if (request.new_identity) become_copy();
    channel_.send(FrameType::resumed, frame.stream, protocol::Resumed{uptime_ms()}.to_payload());
  }

  // The host takes a snapshot of this VM: from `quiesced` on, nothing
  // crosses the channel either way until it says go on (thaw), so the
  // snapshot never holds half a frame. In a copy made from it the host
  // that answers is a new one, and the first thing it says is `resume`.
  // Programs run on meanwhile; their output waits in their pipes.
  void hold_for_snapshot(const protocol::Frame& frame) {
    channel_.send(FrameType::quiesced, frame.stream);
    for (;;) {
      auto next = channel_.receive();
      if (!next || next->type == FrameType::thaw) return;  // gone: serve() notices
      if (next->type != FrameType::resume) {
        throw Error(ErrorCode::protocol,
                    "unexpected frame " + std::string(protocol::to_string(next->type)) + " while quiesced");
      }
      resume(*next);
      return;
    }
  }

  // This VM is a copy of a live sandbox. The streams of the source's host
  // mean nothing to the new one: transfers and connections end; execs run
  // on, unheard, under stream numbers no host uses; the new host's own
  // streams start afresh.
  void become_copy() {
    std::map<uint32_t, std::unique_ptr<RunningExec>> detached;
    for (auto& [stream, exec] : execs_) {
      exec->detach();
      detached.emplace(kFirstDetachedStream + detached_count_++, std::move(exec));
    }
    execs_.swap(detached);
    uploads_.clear();
    downloads_.clear();
    ports_.clear();
    contexts_.become_copy();
    take_new_identity();
    // Every process but PID 1 (this agent): interpreters whose generators
    // were seeded once reseed from the CRNG, fresh by now (the image's
    // hooks; SIGURG is ignored by any other program).
    ::kill(-1, SIGURG);
  }

  void start_exec(const protocol::Frame& frame) {
    const auto received = RunningExec::Clock::now();
    auto request = protocol::Exec::parse(frame.payload);
    if (execs_.count(frame.stream)) {
      channel_.send(FrameType::error, frame.stream,
                    protocol::ErrorReport{"stream " + std::to_string(frame.stream) + " already runs an exec"}
                        .to_payload());
      return;
    }
    try {
      apply_disk_limit(request);
      Program program = request.prestarted ? take_prestarted(prestarted_, request)
                                           : start_program(request, false, ExecCgroup::create("exec"));
      execs_.emplace(frame.stream, std::make_unique<RunningExec>(channel_, frame.stream, std::move(request),
                                                                 std::move(program), received));
    } catch (const Error& e) {
      if (e.code() == ErrorCode::protocol) throw;
      channel_.send(FrameType::error, frame.stream, protocol::ErrorReport{e.what()}.to_payload());
    }
  }

  // The disk budget is the VM's, for its whole life: set once, by its first
  // exec or context, so the files earlier ones wrote count against it.
  void apply_disk_limit(const protocol::Exec& request) {
    if (request.disk_limit_bytes != 0 && request.disk_limit_bytes != disk_limit_applied_) {
      limit_writable_space(root_device_, request.disk_limit_bytes);
      disk_limit_applied_ = request.disk_limit_bytes;
    }
  }

  Channel& channel_;
  std::string root_device_;
  UniqueFd child_signals_;
  std::optional<Program> prestarted_;
  std::map<uint32_t, std::unique_ptr<RunningExec>> execs_;
  std::map<uint32_t, Upload> uploads_;
  std::map<uint32_t, Download> downloads_;
  std::map<uint32_t, std::unique_ptr<PortRelay>> ports_;
  uint64_t disk_limit_applied_ = 0;
  // Execs of a snapshot's source, running on in a copy (become_copy).
  static constexpr uint32_t kFirstDetachedStream = 0x80000000u;
  uint32_t detached_count_ = 0;
  CodeContexts contexts_;  // last: destroyed (its interpreters killed) first
};

int serve() {
  sigset_t blocked;
  sigemptyset(&blocked);
  sigaddset(&blocked, SIGCHLD);
  ::sigprocmask(SIG_BLOCK, &blocked, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  mount_early_filesystems();
  open_console();
  harden_kernel();
  const char hostname[] = "sandbox";
  ::sethostname(hostname, sizeof hostname - 1);
  load_modules();
  auto parameters = kernel_parameters();
  const bool probe_only = parameters.count("airlock.probe") != 0;
  auto root = parameters.find("airlock.root");
  const std::string root_device = root != parameters.end() ? root->second : "/dev/vda";
  if (!probe_only) mount_root(root_device, 5000);
  if (!set_up_exec_cgroups()) log_line("no cgroups: an exec's processes are ended by process group");
  try {
    bring_up_loopback();
  } catch (const Error& e) {
    log_line(std::string("loopback: ") + e.what());
  }

  Channel channel(open_named_port("airlock", 5000));
  protocol::Hello hello;
  hello.agent_version = AIRLOCK_VERSION;
  hello.uptime_ms = uptime_ms();
  channel.send(FrameType::hello, 0, hello.to_payload());
  auto ack_frame = channel.receive();
  if (!ack_frame || ack_frame->type != FrameType::hello_ack) {
    log_line("host did not acknowledge hello");
    return 1;
  }
  auto ack = protocol::HelloAck::parse(ack_frame->payload);
  if (ack.protocol != protocol::kProtocolVersion) {
    log_line("host speaks protocol " + std::to_string(ack.protocol) + ", agent speaks " +
             std::to_string(protocol::kProtocolVersion));
    return 1;
  }

  Agent agent(channel, root_device);
  agent.serve();
  return 0;
}

}  // namespace
}  // namespace airlock::guest

int main() {
  try {
    airlock::guest::serve();
  } catch (const std::exception& e) {
    airlock::guest::log_line(std::string("fatal: ") + e.what());
  }
  airlock::guest::halt_vm();
}
