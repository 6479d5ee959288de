#include "engine/guest_session.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <thread>

#include "common/error.h"
#include "common/io.h"

namespace airlock::engine {

using protocol::FrameType;

namespace {

constexpr uint32_t kExecStream = 1;
// A guest that was told to stop gets this long to report before we stop listening.
constexpr auto kStopGrace = std::chrono::milliseconds(1000);

std::string last_lines(const std::string& text, size_t max_bytes) {
  std::string tail = text.size() > max_bytes ? text.substr(text.size() - max_bytes) : text;
  while (!tail.empty() && (tail.back() == '\n' || tail.back() == '\r')) tail.pop_back();
  return tail;
}

}  // namespace

CancelToken::CancelToken() : event_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
  if (!event_) throw_errno("eventfd");
}

void CancelToken::cancel() const noexcept {
  uint64_t one = 1;
  ssize_t ignored = ::write(event_.get(), &one, sizeof one);
  (void)ignored;
}

bool CancelToken::cancelled() const {
  pollfd p{event_.get(), POLLIN, 0};
  return ::poll(&p, 1, 0) > 0;
}

GuestSession::GuestSession(vmm::Vm& vm, const CancelToken* cancel) : vm_(vm), cancel_(cancel) {
  set_nonblocking(vm_.channel_fd());
}

void GuestSession::queue(FrameType type, uint32_t stream, std::string_view payload) {
  outbox_ += protocol::encode_frame(type, stream, payload);
}

void GuestSession::queue_file(const std::string& path, std::string_view content, uint32_t mode) {
  queue(FrameType::write_file, kExecStream, protocol::WriteFile{path, content.size(), mode}.to_payload());
  for (size_t offset = 0; offset < content.size(); offset += protocol::kDataChunk) {
    queue(FrameType::file_data, kExecStream, content.substr(offset, protocol::kDataChunk));
  }
}

void GuestSession::flush() {
  while (!outbox_.empty() && channel_open_) {
    // MSG_NOSIGNAL: a VM that died must not take this process down with SIGPIPE.
    ssize_t n = ::send(vm_.channel_fd(), outbox_.data(), outbox_.size(), MSG_NOSIGNAL);
    if (n > 0) {
      outbox_.erase(0, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    // EPIPE/ECONNRESET: QEMU is gone; the exit fd will tell the rest.
    channel_open_ = false;
    outbox_.clear();
  }
}

bool GuestSession::read_channel() {
  char buffer[65536];
  for (int i = 0; i < 16; ++i) {
    auto n = read_some(vm_.channel_fd(), buffer, sizeof buffer);
    if (!n) return true;
    if (*n == 0) return false;
    decoder_.feed(std::string_view(buffer, *n));
    // Decode before reading more, so buffered bytes stay bounded.
    if (decoder_.buffered() > protocol::kHeaderSize + protocol::kMaxPayload) return true;
  }
  return true;
}

GuestSession::Wakeup GuestSession::wait(SteadyClock::time_point deadline) {
  flush();
  // A VM already reaped (an earlier step saw it stop) has no exit fd left to
  // wake us: say so now rather than at the deadline.
  if (vm_.exit_fd() < 0 && vm_.exit_reason()) {
    Wakeup stopped;
    stopped.vm_stopped = true;
    return stopped;
  }
  pollfd fds[4] = {
      {channel_open_ ? vm_.channel_fd() : -1, static_cast<short>(POLLIN | (outbox_.empty() ? 0 : POLLOUT)),
       0},
      {vm_.exit_fd(), POLLIN, 0},
      {vm_.console_fd(), POLLIN, 0},
      {cancel_ ? cancel_->fd() : -1, POLLIN, 0},
  };
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyClock::now());
  int timeout = static_cast<int>(std::clamp<int64_t>(left.count(), 0, 60'000));
  int ready = ::poll(fds, 4, timeout);
  if (ready < 0 && errno != EINTR) throw_errno("poll");
  Wakeup wakeup;
  if (fds[2].revents) vm_.drain_console();
  wakeup.channel_readable = fds[0].revents & (POLLIN | POLLHUP | POLLERR);
  wakeup.vm_stopped = fds[1].revents != 0;
  wakeup.cancel = fds[3].revents != 0;
  return wakeup;
}

std::string GuestSession::describe_stop() { return describe_vm_stop(vm_); }

std::string describe_vm_stop(vmm::Vm& vm) {
  // The channel closes a moment before the process is reaped; give it that moment.
  for (int i = 0; i < 50; ++i) {
    if (auto reason = vm.exit_reason()) {
      vm.drain_console();
      std::string tail = last_lines(vm.console_tail(), 600);
      return "the VM stopped unexpectedly (" + *reason + ")" + (tail.empty() ? "" : "; console: " + tail);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return "the guest closed its channel unexpectedly";
}

protocol::Frame GuestSession::await_frame(SteadyClock::time_point deadline, const char* waiting_for) {
  for (;;) {
    if (auto frame = decoder_.next()) return *frame;
    if (SteadyClock::now() >= deadline) {
      std::string tail = last_lines(vm_.console_tail(), 600);
      throw Error(ErrorCode::vm, std::string("the guest did not ") + waiting_for + " in time" +
                                     (tail.empty() ? "" : "; console: " + tail));
    }
    Wakeup wakeup = wait(deadline);
    if (wakeup.cancel) throw Error(ErrorCode::cancelled, "cancelled while the VM was starting");
    if (wakeup.channel_readable && !read_channel()) throw Error(ErrorCode::vm, describe_stop());
    if (wakeup.vm_stopped) throw Error(ErrorCode::vm, describe_stop());
  }
}

protocol::Hello GuestSession::await_hello(SteadyClock::time_point deadline) {
  protocol::Frame frame = await_frame(deadline, "start");
  if (frame.type != FrameType::hello) {
    throw Error(ErrorCode::protocol,
                "expected hello from the guest, got " + std::string(protocol::to_string(frame.type)));
  }
  auto hello = protocol::Hello::parse(frame.payload);
  if (hello.protocol != protocol::kProtocolVersion) {
    throw Error(ErrorCode::vm, "the guest agent speaks protocol " + std::to_string(hello.protocol) +
                                   " but this host speaks " + std::to_string(protocol::kProtocolVersion) +
                                   "; rebuild the images (images/build)");
  }
  queue(FrameType::hello_ack, 0, protocol::HelloAck{}.to_payload());
  flush();
  return hello;
}

protocol::Resume resume_message(bool new_identity) {
  protocol::Resume resume;
  resume.realtime_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                           std::chrono::system_clock::now().time_since_epoch())
                           .count();
  resume.entropy.resize(64);
  if (::getrandom(resume.entropy.data(), resume.entropy.size(), 0) != 64) throw_errno("getrandom");
  resume.new_identity = new_identity;
  return resume;
}

void GuestSession::resume_clone(SteadyClock::time_point deadline, bool new_identity) {
  queue(FrameType::resume, 0, resume_message(new_identity).to_payload());
  protocol::Frame frame = await_frame(deadline, "resume");
  if (frame.type != FrameType::resumed) {
    throw Error(ErrorCode::protocol,
                "expected resumed from the clone, got " + std::string(protocol::to_string(frame.type)));
  }
  protocol::Resumed::parse(frame.payload);
}

void GuestSession::prestart(const protocol::Exec& exec, SteadyClock::time_point deadline) {
  queue(FrameType::prestart, kExecStream, exec.to_payload());
  await_reply(FrameType::prestarted, deadline, "prestart its interpreter");
}

void GuestSession::warm(const protocol::Exec& exec, SteadyClock::time_point deadline) {
  queue(FrameType::warm, kExecStream, exec.to_payload());
  await_reply(FrameType::warmed, deadline, "warm its interpreter");
}

void GuestSession::setup_network(const protocol::NetworkSetup& setup, SteadyClock::time_point deadline) {
  queue(FrameType::network_setup, 0, setup.to_payload());
  await_reply(FrameType::network_ready, deadline, "configure its network");
}

void GuestSession::mount_shares(const protocol::MountShares& shares, SteadyClock::time_point deadline) {
  queue(FrameType::mount, 0, shares.to_payload());
  await_reply(FrameType::mounted, deadline, "mount its shared directories");
}

void GuestSession::await_reply(FrameType expected, SteadyClock::time_point deadline, const char* doing) {
  protocol::Frame frame = await_frame(deadline, doing);
  if (frame.type == FrameType::error) {
    throw Error(ErrorCode::vm, std::string("the guest could not ") + doing + ": " +
                                   protocol::ErrorReport::parse(frame.payload).message);
  }
  if (frame.type != expected) {
    throw Error(ErrorCode::protocol, "expected " + std::string(protocol::to_string(expected)) +
                                         " from the guest, got " +
                                         std::string(protocol::to_string(frame.type)));
  }
}

protocol::FrameDecoder GuestSession::hand_over() {
  const auto deadline = SteadyClock::now() + std::chrono::seconds(1);
  flush();
  while (!outbox_.empty() && channel_open_ && SteadyClock::now() < deadline) {
    pollfd writable{vm_.channel_fd(), POLLOUT, 0};
    ::poll(&writable, 1, 10);
    flush();
  }
  channel_open_ = false;
  return std::move(decoder_);
}

ExecOutcome GuestSession::execute(const protocol::Exec& exec, std::string_view stdin_data, OutputSink* sink,
                                  std::chrono::milliseconds timeout) {
  ExecOutcome outcome;
  queue(FrameType::exec, kExecStream, exec.to_payload());
  // Stdin is queued whole (our own programs take little or none);
  // acknowledgements follow.
  for (size_t offset = 0; offset < stdin_data.size(); offset += protocol::kDataChunk) {
    queue(FrameType::stdin_data, kExecStream, stdin_data.substr(offset, protocol::kDataChunk));
  }
  queue(FrameType::stdin_close, kExecStream, {});
  const uint64_t stdin_sent = stdin_data.size();
  uint64_t stdin_acked = 0;

  outcome.started = SteadyClock::now();
  auto deadline = outcome.started + timeout;
  bool stopping = false;  // we told the guest to stop; waiting for its report
  auto stop = [&](SteadyClock::time_point now) {
    if (stopping) return;
    stopping = true;
    queue(FrameType::cancel, kExecStream, {});
    deadline = now + kStopGrace;
  };

  auto take_output = [&](bool is_stdout, std::string_view bytes) {
    std::string& kept = is_stdout ? outcome.stdout_data : outcome.stderr_data;
    bool& truncated = is_stdout ? outcome.stdout_truncated : outcome.stderr_truncated;
    const uint64_t limit = is_stdout ? exec.stdout_limit : exec.stderr_limit;
    const size_t room = kept.size() < limit ? static_cast<size_t>(limit - kept.size()) : 0;
    std::string_view accepted = bytes.substr(0, room);
    if (!accepted.empty()) {
      // Room for all the limit allows at once: appending would double the
      // buffer as it grows, twice the output in memory. (Pages of the room
      // never written are never touched.)
      if (kept.empty()) kept.reserve(static_cast<size_t>(std::min<uint64_t>(limit, 64 << 20)));
      kept.append(accepted);
      if (sink) is_stdout ? sink->on_stdout(accepted) : sink->on_stderr(accepted);
    }
    if (accepted.size() < bytes.size() && !truncated) {
      // The agent enforces the limit itself; getting here means it did not.
      truncated = true;
      outcome.host_output_limit = true;
      stop(SteadyClock::now());
    }
  };

  try {
    for (;;) {
      while (auto frame = decoder_.next()) {
        if (frame->stream != kExecStream) {
          throw Error(ErrorCode::protocol, "frame for unknown stream " + std::to_string(frame->stream));
        }
        switch (frame->type) {
          case FrameType::stdout_data: take_output(true, frame->payload); break;
          case FrameType::stderr_data: take_output(false, frame->payload); break;
          case FrameType::stdin_ack: {
            auto ack = protocol::StdinAck::parse(frame->payload);
            if (ack.bytes > stdin_sent - stdin_acked) {
              throw Error(ErrorCode::protocol, "guest acknowledged stdin it was never sent");
            }
            stdin_acked += ack.bytes;
            break;
          }
          case FrameType::exit:
            outcome.report = protocol::ExitReport::parse(frame->payload);
            outcome.ended = SteadyClock::now();
            return outcome;
          case FrameType::error:
            outcome.failure =
                "the guest agent reported: " + protocol::ErrorReport::parse(frame->payload).message;
            outcome.ended = SteadyClock::now();
            return outcome;
          default:
            throw Error(ErrorCode::protocol, "unexpected " + std::string(protocol::to_string(frame->type)) +
                                                 " frame during a run");
        }
      }
      auto now = SteadyClock::now();
      if (now >= deadline) {
        if (stopping) {
          // The guest did not confirm in time; the VM is destroyed regardless.
          outcome.ended = now;
          return outcome;
        }
        outcome.host_timeout = true;
        stop(now);
        continue;
      }
      Wakeup wakeup = wait(deadline);
      if (wakeup.cancel && !stopping) {
        outcome.cancelled = true;
        stop(SteadyClock::now());
      }
      if (wakeup.channel_readable && !read_channel()) {
        outcome.failure = describe_stop();
        outcome.ended = SteadyClock::now();
        return outcome;
      }
      if (wakeup.vm_stopped && !wakeup.channel_readable) {
        outcome.failure = describe_stop();
        outcome.ended = SteadyClock::now();
        return outcome;
      }
    }
  } catch (const Error& e) {
    if (e.code() != ErrorCode::protocol) throw;
    outcome.failure = e.what();
    outcome.ended = SteadyClock::now();
    return outcome;
  }
}

RunResult exec_result(ExecOutcome& outcome, const protocol::Exec& exec) {
  RunResult result;
  result.stdout_data = std::move(outcome.stdout_data);
  result.stderr_data = std::move(outcome.stderr_data);
  const auto* report = outcome.report ? &*outcome.report : nullptr;
  result.stdout_truncated = outcome.stdout_truncated || (report && report->stdout_truncated);
  result.stderr_truncated = outcome.stderr_truncated || (report && report->stderr_truncated);
  if (report) {
    result.exit_code = report->exit_code;
    result.signal = report->signal;
  }
  if (outcome.host_timeout || (report && report->timed_out)) {
    result.status = RunStatus::timeout;
    result.error = exec.timeout_ms > 0 ? "timed out after " + std::to_string(exec.timeout_ms / 1000) + " s"
                                       : std::string("timed out");
  } else if (outcome.cancelled) {
    result.status = RunStatus::killed;
    result.signal = result.signal.value_or(9);
    result.exit_code.reset();
    result.error = "cancelled";
  } else if (outcome.host_output_limit || (report && report->output_limit)) {
    result.status = RunStatus::output_limit;
    result.error = std::string("output limit exceeded (") +
                   (result.stdout_truncated ? "stdout limit " + std::to_string(exec.stdout_limit)
                                            : "stderr limit " + std::to_string(exec.stderr_limit)) +
                   " bytes)";
  } else if (!outcome.failure.empty() || !report) {
    result.status = RunStatus::internal_error;
    result.error = outcome.failure.empty() ? "the guest never reported an exit" : outcome.failure;
  } else if (report->oom) {
    result.status = RunStatus::oom;
    result.error = "killed by the guest's out-of-memory killer";
  } else if (report->signal) {
    result.status = RunStatus::killed;
    result.error = "killed by signal " + std::to_string(*report->signal);
  } else {
    result.status = *report->exit_code == 0 ? RunStatus::ok : RunStatus::error;
  }
  return result;
}

}  // namespace airlock::engine
