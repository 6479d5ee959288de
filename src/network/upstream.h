#pragma once

#include "common/unique_fd.h"
#include "network/egress.h"
#include "network/policy.h"

namespace airlock::network {

// airlockd's half of the egress filter, the only one that touches the host's
// network for an `allow:` guest: resolves the route's name on the host (or
// through the test-only resolver map), refuses every address that is not
// public (forbidden_address_reason; a pinned test server excepted), and
// connects to the first usable address within 10 s. Returns the connected
// non-blocking socket, or throws EgressRefusal with the reason. Returns
// early, refused, once `stop_fd` becomes readable.
UniqueFd connect_route(const EgressRoute& route, const ResolverMap& resolver, int stop_fd);

}  // namespace airlock::network
