#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <set>
#include <thread>

#include "common/unique_fd.h"
#include "engine/guest_mux.h"
#include "engine/guest_session.h"

namespace airlock::engine {

// A TCP port on the host's loopback (chosen by the kernel) whose every
// connection is carried over the sandbox's agent channel to a port of the
// guest's own loopback: it works with no network at all. Each connection
// has a thread of its own that relays both ways, with a window of
// kPortWindow each way, so neither a slow client nor a slow guest program
// holds more than that here. Destroying it closes the port and every
// connection through it.
class PortForward {
 public:
  static constexpr int kMaxConnections = 64;

  // Error(io) if no port can be had.
  PortForward(std::shared_ptr<GuestMux> mux, uint16_t guest_port);
  ~PortForward();
  PortForward(const PortForward&) = delete;
  PortForward& operator=(const PortForward&) = delete;

  uint16_t guest_port() const { return guest_port_; }
  uint16_t host_port() const { return host_port_; }
  int connections() const;

 private:
  void accept_loop();
  void relay(UniqueFd client);

  std::shared_ptr<GuestMux> mux_;
  const uint16_t guest_port_;
  uint16_t host_port_ = 0;
  UniqueFd listener_;
  CancelToken stop_;
  mutable std::mutex mutex_;
  int connections_ = 0;
  std::set<std::thread::id> finished_;
  std::vector<std::thread> relays_;
  std::thread acceptor_;
};

}  // namespace airlock::engine
