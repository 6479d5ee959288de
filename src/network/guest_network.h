#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "common/unique_fd.h"
#include "network/egress.h"
#include "network/policy.h"
#include "protocol/messages.h"

namespace airlock::network {

// The host side of one guest's network, for `allow:` and `full` policies (a
// `none` guest has no network device and no GuestNetwork). The guest's
// virtio-net frames arrive on a socket pair that QEMU inherits; a user-mode
// TCP/IP stack (libslirp) in this process terminates them, so QEMU itself
// needs no network access and stays in its empty network namespace.
//  - allow: the stack is restricted: the guest reaches nothing but one
//    address per allowed name (ports 80 and 443), each forwarded to the
//    egress filter (serve_egress) with the name it stands for. No DNS, no
//    UDP, no IP literals, no other address.
//  - full: unrestricted outbound TCP/UDP and DNS through the host's
//    resolver, except the host's own loopback.
// A thread runs the stack; each filtered connection gets its own thread.
// The destructor stops them all and removes the filter's sockets.
class GuestNetwork {
 public:
  static constexpr size_t kMaxConnections = 64;

  // `socket_dir`: a private directory for the filter's Unix sockets.
  GuestNetwork(const NetworkPolicy& policy, ResolverMap resolver, const std::string& socket_dir);
  ~GuestNetwork();
  GuestNetwork(const GuestNetwork&) = delete;
  GuestNetwork& operator=(const GuestNetwork&) = delete;

  // QEMU's end of the link, to be inherited by its process; close it once spawned.
  int vm_fd() const { return vm_end_.get(); }
  void close_vm_fd() { vm_end_.reset(); }

  // How the guest agent configures its side of the link (one interface, static).
  const protocol::NetworkSetup& guest_setup() const { return setup_; }
  // Connections the filter refused, with reasons, oldest first (at most 100).
  std::vector<std::string> denials() const;

  struct Stack;  // the libslirp side, defined in guest_network.cc

 private:
  void run();          // the stack's thread
  void accept_loop();  // the filter's listeners, and a thread per connection
  void record_denial(const std::string& reason);

  ResolverMap resolver_;
  protocol::NetworkSetup setup_;
  UniqueFd vm_end_;
  UniqueFd host_end_;
  UniqueFd stop_;  // eventfd: readable once the network is shutting down
  std::vector<std::string> socket_paths_;
  std::vector<UniqueFd> listeners_;  // index i: route i
  // Forward i: the guest address it listens on, and where it leads.
  std::vector<std::pair<std::string, EgressRoute>> routes_;
  mutable std::mutex denials_mutex_;
  std::vector<std::string> denials_;
  std::unique_ptr<Stack> stack_;
  std::thread thread_;  // last: started after everything above exists
  std::thread acceptor_;
};

}  // namespace airlock::network
