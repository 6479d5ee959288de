#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "common/clock.h"
#include "common/unique_fd.h"
#include "engine/run_request.h"
#include "engine/run_result.h"
#include "protocol/frame.h"
#include "protocol/messages.h"
#include "vmm/vm_backend.h"

namespace airlock::engine {

// Receives a run's output as the guest produces it.
class OutputSink {
 public:
  virtual ~OutputSink() = default;
  virtual void on_stdout(std::string_view bytes) = 0;
  virtual void on_stderr(std::string_view bytes) = 0;
};

// Lets another thread, or a signal handler, stop a run.
class CancelToken {
 public:
  CancelToken();
  void cancel() const noexcept;  // async-signal-safe
  bool cancelled() const;
  int fd() const { return event_.get(); }

 private:
  UniqueFd event_;
};

struct ExecOutcome {
  std::optional<protocol::ExitReport> report;  // the guest's account, if it gave one
  bool host_timeout = false;                   // the host's deadline passed
  bool cancelled = false;                      // the caller cancelled
  bool host_output_limit = false;              // the guest sent more than the limit allowed
  std::string failure;                         // non-empty: the run broke (VM died, protocol violation)
  std::string stdout_data;
  std::string stderr_data;
  bool stdout_truncated = false;
  bool stderr_truncated = false;
  SteadyClock::time_point started;
  SteadyClock::time_point ended;
};

// What an exec's outcome means as a result (status, error, exit code); the
// output is moved out of `outcome`, not copied.
RunResult exec_result(ExecOutcome& outcome, const protocol::Exec& exec);

// Why a guest's channel ended, for the error: the VM's exit reason and the
// console's last words, once QEMU is reaped (waited for briefly).
std::string describe_vm_stop(vmm::Vm& vm);

// What a guest is told when it runs again after a snapshot (a clone, a copy)
// or a pause: the host's clock and fresh entropy.
protocol::Resume resume_message(bool new_identity);

// The host's side of the conversation with one guest agent. Every byte from
// the guest is untrusted: frames are decoded with bounded memory, output is
// capped on the host whatever the guest claims, and a guest that stops
// reading or talking can only make the run hit its deadline, never hang us.
class GuestSession {
 public:
  GuestSession(vmm::Vm& vm, const CancelToken* cancel);
  // A pooled guest was started for nobody; the request that takes it brings its own token.
  void set_cancel(const CancelToken* cancel) { cancel_ = cancel; }

  // Waits for the agent's hello and acknowledges it. Throws Error(vm) if the
  // VM dies or stays silent until `deadline` (with the console's last words),
  // Error(protocol) for a bad hello, Error(cancelled) if cancelled.
  protocol::Hello await_hello(SteadyClock::time_point deadline);

  // For a VM restored from a snapshot: hands the guest fresh entropy and the
  // time, and waits for its confirmation. Throws like await_hello.
  // `new_identity`: a copy of a live sandbox (protocol::Resume).
  void resume_clone(SteadyClock::time_point deadline, bool new_identity = false);

  // Starts `exec` in the guest as a prestarted interpreter and waits until it
  // is ready (it is then part of any snapshot taken of this VM).
  void prestart(const protocol::Exec& exec, SteadyClock::time_point deadline);

  // Runs our warm-up program (`exec`, its code file queued before) in the
  // prestarted interpreter, which then waits for the program again.
  void warm(const protocol::Exec& exec, SteadyClock::time_point deadline);
  // Configures the guest's network interface and name files (fresh boots only:
  // clones inherit it from their template).
  void setup_network(const protocol::NetworkSetup& setup, SteadyClock::time_point deadline);
  // Mounts the shared directories (after boot or restore: never in a template).
  void mount_shares(const protocol::MountShares& shares, SteadyClock::time_point deadline);

  // Queues a file for the guest; it is sent before anything queued later.
  void queue_file(const std::string& path, std::string_view content, uint32_t mode);

  // Gives the channel up to a GuestMux, with what was read but not yet
  // decoded; the session is not used again. Waits (briefly) until what was
  // queued is sent.
  protocol::FrameDecoder hand_over();

  // Runs one of our own programs (a warm-up) before the guest serves
  // anyone, with `stdin_data` as its whole stdin, and streams its output to
  // `sink` (may be null); output is also kept in the outcome, up to the
  // limits in `exec`. What callers run goes through a GuestMux instead.
  ExecOutcome execute(const protocol::Exec& exec, std::string_view stdin_data, OutputSink* sink,
                      std::chrono::milliseconds timeout);

 private:
  struct Wakeup {
    bool channel_readable = false;
    bool vm_stopped = false;
    bool cancel = false;
  };
  Wakeup wait(SteadyClock::time_point deadline);
  // Reads what the channel has into the decoder; false at end of stream.
  bool read_channel();
  void flush();
  void queue(protocol::FrameType type, uint32_t stream, std::string_view payload);
  std::string describe_stop();
  // Waits for the guest's answer to a request: `expected`, or an error frame (thrown as Error(vm)).
  void await_reply(protocol::FrameType expected, SteadyClock::time_point deadline, const char* doing);
  // Waits for the first frame (hello or resumed), with await_hello's errors.
  protocol::Frame await_frame(SteadyClock::time_point deadline, const char* waiting_for);

  vmm::Vm& vm_;
  const CancelToken* cancel_;
  protocol::FrameDecoder decoder_;
  std::string outbox_;
  bool channel_open_ = true;
};

}  // namespace airlock::engine
