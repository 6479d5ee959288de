#pragma once

#include <poll.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common/unique_fd.h"
#include "guest/channel.h"
#include "protocol/frame.h"

namespace airlock::guest {

// One forwarded connection: a TCP connection to a port of the guest's
// loopback, its bytes carried in port_data frames on its stream, each way
// at most kPortWindow ahead of the other side's port_ack. Served by the
// agent's poll loop like an exec.
class PortRelay {
 public:
  // Connects (answering port_opened, or an error frame); done() at once if that failed.
  PortRelay(Channel& channel, const protocol::Frame& open_frame);
  PortRelay(const PortRelay&) = delete;
  PortRelay& operator=(const PortRelay&) = delete;

  void add_to_poll(std::vector<pollfd>& fds);
  void handle_poll(const std::vector<pollfd>& fds);
  // port_data, port_ack, port_close or cancel for its stream.
  void on_frame(const protocol::Frame& frame);
  // Both ways closed, or it failed: nothing left to serve.
  bool done() const { return !socket_ || (guest_closed_ && host_closed_ && pending_.empty()); }

 private:
  void fail(const std::string& what);
  Channel& channel_;
  uint32_t stream_;
  UniqueFd socket_;
  std::string pending_;        // from the host, not yet written to the socket
  uint64_t sent_ = 0;          // port_data bytes sent to the host
  uint64_t acked_ = 0;         // of which the host took
  bool guest_closed_ = false;  // the guest's end said EOF (port_close sent)
  bool host_closed_ = false;   // the host said port_close
  bool shut_down_ = false;     // our write side is shut (after host_closed_)
  size_t poll_index_ = 0;
};

}  // namespace airlock::guest
