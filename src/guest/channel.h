#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "common/unique_fd.h"
#include "protocol/frame.h"

namespace airlock::guest {

// The agent's end of the virtio-serial port. The host is trusted by the
// agent, but a vanished host must not wedge PID 1, so reads are polled.
class Channel {
 public:
  explicit Channel(UniqueFd port);

  int fd() const { return port_.get(); }
  void send(protocol::FrameType type, uint32_t stream, std::string_view payload = {});
  // Reads what is available without blocking, up to about kMaxBuffered
  // undecoded bytes; false once the host hung up.
  bool pump();
  static constexpr size_t kMaxBuffered = 1 << 20;
  std::optional<protocol::Frame> next() { return decoder_.next(); }
  // The next frame seen in place: valid until the next pump.
  std::optional<protocol::FrameView> next_view() { return decoder_.next_view(); }
  // Blocks until a whole frame arrives; nullopt if the host hung up.
  std::optional<protocol::Frame> receive();

 private:
  UniqueFd port_;
  protocol::FrameDecoder decoder_;
};

// Finds the port the host named `name` (/sys/class/virtio-ports/*/name) and
// opens its /dev node, waiting up to `timeout_ms` for late drivers.
UniqueFd open_named_port(const std::string& name, int timeout_ms);

}  // namespace airlock::guest
