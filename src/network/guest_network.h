#pragma once

#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "common/child_process.h"
#include "common/temp_dir.h"
#include "common/thread_group.h"
#include "common/unique_fd.h"
#include "network/egress.h"
#include "network/netstack_channel.h"
#include "network/policy.h"
#include "protocol/messages.h"
#include "vmm/jail/jail.h"

namespace airlock::network {

// How airlockd starts a guest's network stack.
struct NetstackLaunch {
  std::string program;                   // airlock-netstack
  std::string work_dir;                  // private to this VM; the stack's jail is made below it
  std::string name;                      // the VM's name, unique among live VMs
  std::set<std::string> skipped_layers;  // as for QEMU (--allow-weak-isolation)
};

// The host side of one guest's network, for `allow:` and `full` policies (a
// `none` guest has no network device and no GuestNetwork). QEMU's virtio-net
// frames go over a socket pair to an airlock-netstack process, spawned here
// in a jail like QEMU's (its own uid, namespaces, cgroup, rlimits, seccomp;
// for `allow:` also an empty network namespace), which runs libslirp and
// the egress filter's guest side: nothing a guest sends is parsed in
// airlockd. What airlockd keeps (`allow:`) is the decision that touches the
// host's network: the stack asks, by index, for route i (an allowed name
// and port), and this class resolves it, refuses addresses that are not
// public, connects, and passes the connected socket back
// (network/netstack_channel.h).
//  - allow: the guest reaches nothing but one address per allowed name
//    (ports 80 and 443), checked by the filter. No DNS, no UDP, no IP
//    literals, no other address.
//  - full: unrestricted outbound TCP/UDP and DNS through the host's
//    resolver, except the host's own loopback; the stack keeps the host's
//    network namespace to open them.
// The destructor kills the stack and joins every thread.
class GuestNetwork {
 public:
  static constexpr size_t kMaxConnections = 64;

  GuestNetwork(const NetworkPolicy& policy, ResolverMap resolver, const NetstackLaunch& launch);
  ~GuestNetwork();
  GuestNetwork(const GuestNetwork&) = delete;
  GuestNetwork& operator=(const GuestNetwork&) = delete;

  // QEMU's end of the link, to be inherited by its process; close it once spawned.
  int vm_fd() const { return vm_end_.get(); }
  void close_vm_fd() { vm_end_.reset(); }
  // The stack's process (tests look at its confinement).
  pid_t stack_pid() const { return stack_.pid(); }

  // How the guest agent configures its side of the link (one interface, static).
  const protocol::NetworkSetup& guest_setup() const { return setup_; }
  // Connections refused, with reasons, oldest first (at most 100): those the
  // stack refused (a name that is not the route's) and those refused here.
  std::vector<std::string> denials();

 private:
  void serve();                               // the channel's thread
  void handle(NetstackMessage message);       // under channel_mutex_
  void connect(uint32_t id, uint32_t route);  // a worker's thread
  void record_denial(std::string reason);
  void note_stack_end();

  ResolverMap resolver_;
  std::vector<EgressRoute> routes_;  // index i: the stack's route i
  protocol::NetworkSetup setup_;
  UniqueFd vm_end_;
  UniqueFd channel_;
  UniqueFd stop_;  // eventfd: readable once the network is shutting down
  std::mutex denials_mutex_;
  std::vector<std::string> denials_;
  std::mutex channel_mutex_;  // one reader at a time: the thread, or denials()
  bool stack_ended_ = false;  // under channel_mutex_
  TempDir dir_;               // the stack's jail is made in it
  std::unique_ptr<vmm::jail::Jail> jail_;
  ChildProcess stack_;
  ThreadGroup workers_{kMaxConnections};  // under channel_mutex_
  std::thread thread_;                    // last: started after everything above exists
};

}  // namespace airlock::network
