#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace airlock::network {

enum class NetworkMode {
  none,   // no network device in the guest at all
  allow,  // HTTP/HTTPS to the listed names only, checked and resolved on the host
  full,   // unfiltered outbound access (explicit opt-in); the host's loopback stays closed
};

struct NetworkPolicy {
  static constexpr size_t kMaxAllowedNames = 64;

  NetworkMode mode = NetworkMode::none;
  std::vector<std::string> allowed;  // canonical names: lowercase, sorted, unique

  // The canonical spelling ("none", "full", "allow:a.test,b.test"): equal
  // policies spell the same, so it can key a template or a pool.
  std::string to_string() const;
};

// Parses "none", "full" or "allow:NAME[,NAME...]". Names are DNS names
// (letters, digits, hyphens, dots); IP literals, wildcards, ports and
// schemes are refused. Throws Error(invalid_argument) naming the bad part.
NetworkPolicy parse_network_policy(std::string_view text);

// A DNS name in canonical form (lowercase, no trailing dot), or nullopt if
// `text` is not one (IP literals included).
std::optional<std::string> canonical_domain(std::string_view text);

// An IPv4 or IPv6 address with a port.
struct Endpoint {
  sockaddr_storage address{};
  socklen_t length = 0;
  std::string describe() const;  // "127.0.0.1:8080", "[::1]:443"
};

// One entry of the test-only resolver map, "NAME=ADDRESS" or "NAME=ADDRESS:PORT".
//  - With a port it pins NAME to a local test server: the connection goes
//    there whatever the guest's port, and the address rules do not apply
//    (the operator chose the route, as with a hosts file).
//  - Without a port it stands in for a DNS answer: the guest's port is kept
//    and every address rule applies, as for a real resolution.
struct ResolverEntry {
  std::string name;
  Endpoint endpoint;  // port 0 when not pinned
  bool pinned = false;
};
using ResolverMap = std::map<std::string, ResolverEntry>;

// Throws Error(invalid_argument) naming what is malformed.
ResolverEntry parse_resolver_entry(std::string_view text);

// Why an allowlisted name may not be connected to at this address (loopback,
// private, link-local, cloud metadata, multicast, reserved, or an IPv6 form
// embedding one of those), or nullopt if it is a public unicast address.
// Also refused: one of this host's own addresses (`host`, or the host's
// interfaces now, from getifaddrs), public or not, which reaches every
// service on the host, airlockd's own listener included.
std::optional<std::string> forbidden_address_reason(const sockaddr* address);
std::optional<std::string> forbidden_address_reason(const sockaddr* address,
                                                    const std::vector<sockaddr_storage>& host);
std::vector<sockaddr_storage> host_addresses();

}  // namespace airlock::network
