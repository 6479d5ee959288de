#pragma once

#include <poll.h>
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "guest/channel.h"
#include "protocol/context_messages.h"
#include "protocol/frame.h"

namespace airlock::guest {

// The code contexts of a sandbox (docs/protocol.md, "Code contexts"): each
// an interpreter started as an exec is (sandbox user, chroot, a cgroup of
// its own) that runs cells of code and keeps its variables between them.
// The agent, not the host, holds them, so they live on in a snapshot and
// in every copy made from one. The interpreter speaks JSON lines on its
// control socket; the cell's output comes from its stdout and stderr pipes,
// drained before each of its events is passed on so the order holds. One
// cell at a time per context; a cell past its timeout is interrupted
// (SIGINT), and killed with its interpreter if it does not stop.
class CodeContexts {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr size_t kMaxContexts = 16;
  // A cell that ignores the interrupt at its timeout has this long to stop.
  static constexpr std::chrono::seconds kInterruptGrace{2};
  // An interpreter that does not say ready in this long is killed.
  static constexpr std::chrono::seconds kStartTimeout{60};
  // An event bigger than this (a huge image) ends the context.
  static constexpr size_t kMaxEventBytes = 64 << 20;

  // `prepare` runs before an interpreter starts (the VM's disk limit).
  CodeContexts(Channel& channel, std::function<void(const protocol::Exec&)> prepare);
  ~CodeContexts();  // kills every interpreter
  CodeContexts(const CodeContexts&) = delete;
  CodeContexts& operator=(const CodeContexts&) = delete;

  static bool handles(protocol::FrameType type);
  void on_frame(const protocol::Frame& frame);
  // The host gave up on `stream`; true if a cell ran on it (it is
  // interrupted, and nothing more of it is sent).
  bool on_cancel(uint32_t stream);

  void add_to_poll(std::vector<pollfd>& fds);
  void handle_poll(const std::vector<pollfd>& fds);
  // True if `pid` was an interpreter of a context (which is dead now).
  bool reap(pid_t pid, int status);
  Clock::time_point wake_at() const;
  void on_time(Clock::time_point now);
  // This VM is a copy of a snapshot: the contexts live on; cells running
  // for the source's host go on unheard.
  void become_copy();

 private:
  struct Context;
  void start(const protocol::Frame& frame);
  void run(const protocol::Frame& frame);
  void control(const protocol::Frame& frame);
  void spawn(Context& context);
  void kill_interpreter(Context& context);
  void read_control(Context& context);
  void take_line(Context& context, const std::string& line);
  void drain_output(Context& context);
  void forward_output(Context& context, int which, std::string_view bytes);
  void finish_cell(Context& context, const std::string& status, uint64_t execution_count,
                   const std::string& reason);
  void die(Context& context, const std::string& reason);
  void forget_failed_starts();
  void answer(uint32_t stream, const std::vector<const Context*>& contexts);
  void refuse(uint32_t stream, const std::string& message);
  Context* find(const std::string& name, uint32_t stream);

  Channel& channel_;
  std::function<void(const protocol::Exec&)> prepare_;
  std::map<std::string, std::unique_ptr<Context>> contexts_;
};

}  // namespace airlock::guest
