#pragma once

#include "protocol/messages.h"

namespace airlock::guest {

// Brings up the loopback interface: programs may serve and reach 127.0.0.1
// inside their own VM whatever the network policy.
void bring_up_loopback();

// Configures the one network interface a `full` or `allow:` guest has, and
// the files its programs resolve names with (/etc/hosts, /etc/resolv.conf of
// the image). Throws Error if the guest has no such interface.
void configure_network(const protocol::NetworkSetup& setup);

}  // namespace airlock::guest
