#include "guest/running_exec.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/io.h"

namespace airlock::guest {

using protocol::FrameType;

OomWatch::OomWatch() : kmsg_(::open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC)) {
  if (kmsg_) ::lseek(kmsg_.get(), 0, SEEK_END);  // only what happens from now on
}

bool OomWatch::saw_oom_kill() {
  if (!kmsg_) return false;
  char record[2048];
  for (int i = 0; i < 10000; ++i) {
    ssize_t n = ::read(kmsg_.get(), record, sizeof record - 1);
    if (n < 0 && errno == EPIPE) continue;  // overwritten while we read: skip ahead
    if (n <= 0) break;
    record[n] = '\0';
    if (std::strstr(record, "Out of memory") || std::strstr(record, "oom-kill")) seen_ = true;
  }
  return seen_;
}

namespace {

// Reads what a prestarted interpreter says on its control socket: once a
// whole line "exit N" (0..255) has come, N. Returns false when there is no
// more to listen for (the notice came, EOF, or something else was said).
// The interpreter runs as the sandbox user, so the notice is believed only
// for what it can affect: this run's own result. Only bytes the kernel says
// `interpreter` itself sent count (SO_PASSCRED, set in start_program): a
// process it forked shares the socket, but its exit is not the run's.
bool read_exit_notice(int control, pid_t interpreter, std::string& said, std::optional<int>& exit_code) {
  char buffer[64];
  alignas(cmsghdr) char ancillary[CMSG_SPACE(sizeof(ucred))];
  iovec data{buffer, sizeof buffer};
  msghdr message{};
  message.msg_iov = &data;
  message.msg_iovlen = 1;
  message.msg_control = ancillary;
  message.msg_controllen = sizeof ancillary;
  ssize_t n = ::recvmsg(control, &message, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
  if (n < 0) return errno == EAGAIN || errno == EINTR;
  if (n == 0) return false;
  // A stream read never joins bytes of two senders while SO_PASSCRED is on.
  const cmsghdr* header = CMSG_FIRSTHDR(&message);
  ucred sender{};
  if (header && header->cmsg_level == SOL_SOCKET && header->cmsg_type == SCM_CREDENTIALS) {
    std::memcpy(&sender, CMSG_DATA(header), sizeof sender);
  }
  if (sender.pid != interpreter) return true;
  said.append(buffer, static_cast<size_t>(n));
  size_t end = said.find('\n');
  if (end == std::string::npos) return said.size() < 64;
  const std::string digits = said.compare(0, 5, "exit ") == 0 ? said.substr(5, end - 5) : "";
  if (!digits.empty() && digits.size() <= 3 && digits.find_first_not_of("0123456789") == std::string::npos &&
      std::stoi(digits) <= 255) {
    exit_code = std::stoi(digits);
  }
  return false;
}

constexpr auto kDrainGrace = std::chrono::milliseconds(200);

}  // namespace

RunningExec::RunningExec(Channel& channel, uint32_t stream, protocol::Exec request, Program program,
                         Clock::time_point received)
    : channel_(channel),
      stream_(stream),
      request_(std::move(request)),
      child_(program.pid),
      cgroup_(std::move(program.cgroup)),
      started_(Clock::now()),
      stdin_write_(std::move(program.stdin_write)),
      outputs_{{std::move(program.stdout_read), FrameType::stdout_data, request_.stdout_limit},
               {std::move(program.stderr_read), FrameType::stderr_data, request_.stderr_limit}},
      control_(std::move(program.control)) {
  report_.start_us = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(started_ - received).count());
  // No timeout (0) is for a background exec: it lasts as long as its sandbox.
  if (request_.timeout_ms > 0) backstop_ = started_ + std::chrono::milliseconds(request_.timeout_ms);
  if (!cgroup_.valid()) oom_watch_.emplace();
}

void RunningExec::kill_everything() {
  if (killed_) return;
  killed_ = true;
  if (cgroup_.valid()) {
    cgroup_.kill_all();
  } else {
    // No group to end: the program's process group is what there is.
    ::kill(-child_, SIGKILL);
    ::kill(child_, SIGKILL);
  }
}

void RunningExec::ack_stdin() {
  if (stdin_unacked_ == 0 || host_gone_ || detached_) return;
  channel_.send(FrameType::stdin_ack, stream_, protocol::StdinAck{stdin_unacked_}.to_payload());
  stdin_unacked_ = 0;
}

void RunningExec::on_frame(const protocol::Frame& frame) {
  switch (frame.type) {
    case FrameType::stdin_data:
      if (stdin_write_) {
        stdin_pending_ += frame.payload;
      } else {
        stdin_unacked_ += frame.payload.size();
      }
      break;
    case FrameType::stdin_close:
      // A terminal has no end of input but the one its line discipline
      // knows: ^D, which a program reading lines takes as EOF.
      // (Not stdin the host sent: never acknowledged.)
      if (request_.tty && !stdin_close_requested_ && stdin_write_ && stdin_pending_.empty()) {
        ssize_t ignored = ::write(stdin_write_.get(), "\x04", 1);
        (void)ignored;
      }
      stdin_close_requested_ = true;
      break;
    case FrameType::resize:
      if (request_.tty && outputs_[0].pipe) {
        const auto size = protocol::Resize::parse(frame.payload);
        winsize window{size.rows, size.cols, 0, 0};
        ::ioctl(outputs_[0].pipe.get(), TIOCSWINSZ, &window);
      }
      break;
    case FrameType::cancel: kill_everything(); break;
    case FrameType::signal: {
      const int number = protocol::Signal::parse(frame.payload).signal;
      if (!child_status_) {
        // To the program's process group (it leads its own session), as a
        // terminal would: a shell's pipeline hears it too.
        if (::kill(-child_, number) < 0) ::kill(child_, number);
      }
      break;
    }
    default: break;
  }
  ack_stdin();
}

void RunningExec::add_to_poll(std::vector<pollfd>& fds) {
  // The host ended stdin and all of it is written: the program sees EOF.
  // Checked before waiting, since the close may have come with the exec
  // itself (empty stdin), and then nothing else would wake the loop.
  if (stdin_write_ && stdin_close_requested_ && stdin_pending_.empty()) stdin_write_.reset();
  poll_index_ = fds.size();
  fds.push_back({outputs_[0].pipe.get(), POLLIN, 0});
  fds.push_back({outputs_[1].pipe.get(), POLLIN, 0});
  fds.push_back({stdin_write_.get(), stdin_pending_.empty() ? short(0) : short(POLLOUT), 0});
  fds.push_back({control_.get(), POLLIN, 0});
}

void RunningExec::feed_stdin() {
  ssize_t n = ::write(stdin_write_.get(), stdin_pending_.data(), stdin_pending_.size());
  if (n > 0) {
    stdin_pending_.erase(0, static_cast<size_t>(n));
    stdin_unacked_ += static_cast<uint64_t>(n);
  } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
    // The program closed its stdin (EPIPE): the rest is discarded, but
    // still acknowledged so the host's flow control never stalls.
    stdin_unacked_ += stdin_pending_.size();
    stdin_pending_.clear();
    stdin_write_.reset();
  }
}

void RunningExec::forward_output(Output& out) {
  char buffer[protocol::kDataChunk];
  for (int reads = 0; reads < 16; ++reads) {
    auto n = read_some(out.pipe.get(), buffer, sizeof buffer);
    if (!n) break;
    if (*n == 0) {
      out.pipe.reset();
      break;
    }
    // The caps are exact: what passes the limit is never sent.
    uint64_t room = out.limit > out.sent ? out.limit - out.sent : 0;
    size_t forward = static_cast<size_t>(std::min<uint64_t>(room, *n));
    if (forward > 0 && !host_gone_ && !detached_)
      channel_.send(out.type, stream_, std::string_view(buffer, forward));
    out.sent += forward;
    if (forward < *n && !out.truncated) {
      out.truncated = true;
      report_.output_limit = true;
      kill_everything();
    }
  }
}

void RunningExec::handle_poll(const std::vector<pollfd>& fds) {
  const pollfd* mine = &fds[poll_index_];
  constexpr short kReadable = POLLIN | POLLHUP | POLLERR;
  if (stdin_write_ && !stdin_pending_.empty() && (mine[2].revents & (POLLOUT | POLLERR | POLLHUP))) {
    feed_stdin();
  }
  ack_stdin();
  for (int i = 0; i < 2; ++i) {
    if (outputs_[i].pipe && (mine[i].revents & kReadable)) forward_output(outputs_[i]);
  }
  if (control_ && (mine[3].revents & kReadable)) {
    std::optional<int> exit_code;
    if (!read_exit_notice(control_.get(), child_, control_said_, exit_code)) control_.reset();
    if (exit_code && !child_status_) {
      child_status_ = W_EXITCODE(*exit_code, 0);
      exit_seen_ = Clock::now();
      drain_deadline_ = Clock::now() + kDrainGrace;
    }
  }
}

bool RunningExec::reap(pid_t pid, int status) {
  if (pid != child_) return false;
  // A prestarted interpreter's own notice came first and is the result.
  if (!child_status_) {
    child_status_ = status;
    exit_seen_ = Clock::now();
    drain_deadline_ = Clock::now() + kDrainGrace;
  }
  child_ = -child_;  // reaped: its number may be reused, never signal it again
  return true;
}

RunningExec::Clock::time_point RunningExec::wake_at() const {
  return finished_ ? Clock::time_point::max() : std::min(backstop_, drain_deadline_);
}

void RunningExec::on_time(Clock::time_point now) {
  if (now >= drain_deadline_) {
    kill_everything();
    drain_deadline_ = Clock::time_point::max();
  }
  if (now >= backstop_) {
    if (!child_status_) report_.timed_out = true;
    kill_everything();
    backstop_ = Clock::time_point::max();
  }
}

void RunningExec::detach() {
  detached_ = true;
  stdin_write_.reset();
  stdin_pending_.clear();
}

void RunningExec::abandon() {
  host_gone_ = true;
  kill_everything();
}

bool RunningExec::finish_if_done() {
  if (finished_) return true;
  if (host_gone_) return finished_ = true;
  if (outputs_[0].pipe || outputs_[1].pipe || !child_status_) return false;
  // No process of this exec may outlive it.
  kill_everything();
  const int status = *child_status_;
  if (WIFEXITED(status)) {
    report_.exit_code = WEXITSTATUS(status);
  } else {
    report_.signal = WTERMSIG(status);
    report_.oom = report_.signal == SIGKILL &&
                  (cgroup_.valid() ? cgroup_.oom_kills() > 0 : oom_watch_ && oom_watch_->saw_oom_kill());
  }
  report_.stdout_truncated = outputs_[0].truncated;
  report_.stderr_truncated = outputs_[1].truncated;
  report_.duration_us = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - started_).count());
  report_.run_us = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(exit_seen_ - started_).count());
  ack_stdin();
  if (!detached_) channel_.send(FrameType::exit, stream_, report_.to_payload());
  return finished_ = true;
}

}  // namespace airlock::guest
