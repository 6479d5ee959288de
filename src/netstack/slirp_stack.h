#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/unique_fd.h"

namespace airlock::netstack {

// A forward of the restricted (`allow:`) stack: guest connections to
// `guest_address:port` go to the Unix socket `socket_path`.
struct Forward {
  std::string guest_address;
  uint16_t port = 0;
  std::string socket_path;
};

// libslirp terminating one guest's ethernet frames, which arrive on `link`
// (QEMU's stream netdev framing: a 4-byte big-endian length, then the frame).
//  - restricted: nothing but the forwards; no DNS, no UDP, no other address.
//  - otherwise (`full`): outbound TCP/UDP and DNS through the host's
//    resolver, except the host's own loopback.
class SlirpStack {
 public:
  SlirpStack(UniqueFd link, bool restricted, const std::vector<Forward>& forwards);
  ~SlirpStack();
  SlirpStack(const SlirpStack&) = delete;
  SlirpStack& operator=(const SlirpStack&) = delete;

  // Moves frames until the link is gone (QEMU exited) or broken by a
  // malformed frame; then returns.
  void run();

  struct State;  // libslirp's callbacks and their data, in slirp_stack.cc

 private:
  UniqueFd link_;
  std::unique_ptr<State> state_;
};

}  // namespace airlock::netstack
