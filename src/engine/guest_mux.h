#pragma once

#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include "common/clock.h"
#include "common/unique_fd.h"
#include "protocol/frame.h"
#include "vmm/vm_backend.h"

namespace airlock::engine {

// Takes the frames of one stream of a multiplexed guest. Called on the mux's
// own thread, one frame at a time and in order; it must not block (it may
// queue frames with GuestMux::send).
class StreamHandler {
 public:
  virtual ~StreamHandler() = default;
  virtual void on_frame(const protocol::Frame& frame) = 0;
  // No frame will come any more: the guest stopped, broke the protocol, or
  // the mux is closing. `reason` says which.
  virtual void on_broken(const std::string& reason) = 0;
};

// The host's side of a guest that serves many streams at once (a sandbox's
// execs and file transfers). One thread reads every frame the guest sends
// and hands it to the handler of its stream, and writes what callers queue,
// so no caller ever reads the channel and a caller that is slow (a client
// that stops reading) holds up only itself. The guest is untrusted: a frame
// for a stream nobody opened is dropped, a malformed one or a protocol
// violation breaks the mux, and every handler hears why.
class GuestMux {
 public:
  // Takes over the channel of `vm` from a GuestSession (`decoder`: what it
  // had read but not yet decoded).
  GuestMux(vmm::Vm& vm, protocol::FrameDecoder decoder);
  ~GuestMux();  // shutdown()
  // Stops the thread: from now on nothing touches the VM (it may be
  // destroyed), sends fail, and open handlers hear on_broken(`reason`).
  // Idempotent.
  void shutdown(const std::string& reason = "closed");
  GuestMux(const GuestMux&) = delete;
  GuestMux& operator=(const GuestMux&) = delete;

  // A new stream id with its handler. Error(vm) if the mux is broken.
  uint32_t open_stream(std::shared_ptr<StreamHandler> handler);
  void close_stream(uint32_t stream);

  // Queues a frame for the guest. Bulk senders (file data) pass a deadline
  // and wait while a lot is queued already; control frames never wait.
  // Error(vm) once the mux is broken, or at the deadline (the guest stopped reading).
  void send(protocol::FrameType type, uint32_t stream, std::string_view payload = {});
  // Frames encoded already (protocol::encode_frame), queued as one piece.
  void send_encoded(std::string frames);
  void send_bulk(protocol::FrameType type, uint32_t stream, std::string_view payload,
                 SteadyClock::time_point deadline);

  // Sends one request on a stream of its own and waits for its `answer`
  // (Error(vm) naming `doing` for an error frame, another frame, or none by `deadline`).
  protocol::Frame ask(protocol::FrameType type, std::string_view payload, protocol::FrameType answer,
                      const std::string& doing, SteadyClock::time_point deadline);

  // For a snapshot: tells the guest to quiesce and returns once it has
  // (everything it sent before is delivered, and it sends nothing more);
  // from then on what callers queue waits on the host, so the guest never
  // holds half a frame. Error(vm) if it does not answer by `deadline` (the
  // hold is lifted then). Every quiesce ends with thaw().
  void quiesce(SteadyClock::time_point deadline);
  // Tells the guest to go on (`thaw` goes first), then what waited.
  void thaw();

  // Why it broke (the VM stopped, ...), once it has.
  std::optional<std::string> broken() const;

 private:
  void pump();
  void break_with(const std::string& reason);
  void wake();

  vmm::Vm& vm_;
  protocol::FrameDecoder decoder_;  // the pump's only
  UniqueFd wake_;                   // eventfd: something to send, or stop
  mutable std::mutex mutex_;
  std::condition_variable room_;  // the outbox drained below its bound
  std::string outbox_;
  // While quiesced: how much of outbox_ may still go to the guest (the
  // bytes up to the quiesce frame); the rest waits for thaw().
  std::optional<size_t> sendable_;
  std::map<uint32_t, std::shared_ptr<StreamHandler>> handlers_;
  uint32_t next_stream_ = 16;  // below: the single-caller GuestSession's
  std::optional<std::string> broken_;
  bool stopping_ = false;
  std::mutex join_mutex_;  // shutdown() may come from two threads at once
  std::thread thread_;
};

}  // namespace airlock::engine
