#include "network/policy.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstring>

#include "common/error.h"

namespace airlock::network {

namespace {

[[noreturn]] void reject(const std::string& message) { throw Error(ErrorCode::invalid_argument, message); }

bool is_label_char(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'; }

struct Ipv4Range {
  uint32_t network;
  int prefix;
  const char* why;
};

// Special-purpose IPv4 space (RFC 6890 and successors): none of it is a
// public destination an allowlisted name may lead to.
constexpr Ipv4Range kForbiddenIpv4[] = {
    {0x00000000, 8, "'this network' (0.0.0.0/8)"},
    {0x0A000000, 8, "private (10.0.0.0/8)"},
    {0x64400000, 10, "carrier-grade NAT (100.64.0.0/10)"},
    {0x7F000000, 8, "loopback (127.0.0.0/8)"},
    {0xA9FEA9FE, 32, "the cloud metadata service (169.254.169.254)"},
    {0xA9FE0000, 16, "link-local (169.254.0.0/16)"},
    {0xAC100000, 12, "private (172.16.0.0/12)"},
    {0xC0000000, 24, "IETF protocol assignments (192.0.0.0/24)"},
    {0xC0000200, 24, "documentation (192.0.2.0/24)"},
    {0xC0586300, 24, "6to4 relay anycast (192.88.99.0/24)"},
    {0xC0A80000, 16, "private (192.168.0.0/16)"},
    {0xC6120000, 15, "benchmarking (198.18.0.0/15)"},
    {0xC6336400, 24, "documentation (198.51.100.0/24)"},
    {0xCB007100, 24, "documentation (203.0.113.0/24)"},
    {0xE0000000, 4, "multicast (224.0.0.0/4)"},
    {0xF0000000, 4, "reserved (240.0.0.0/4)"},
};

std::optional<std::string> forbidden_ipv4(uint32_t host_order) {
  for (const auto& range : kForbiddenIpv4) {
    const uint32_t mask = range.prefix == 0 ? 0 : ~uint32_t{0} << (32 - range.prefix);
    if ((host_order & mask) == range.network) return std::string(range.why);
  }
  return std::nullopt;
}

uint32_t ipv4_at(const uint8_t* bytes) {
  return (uint32_t{bytes[0]} << 24) | (uint32_t{bytes[1]} << 16) | (uint32_t{bytes[2]} << 8) | bytes[3];
}

std::optional<std::string> forbidden_ipv6(const in6_addr& address) {
  const uint8_t* b = address.s6_addr;
  auto prefix_is = [b](std::initializer_list<uint8_t> prefix) {
    return std::equal(prefix.begin(), prefix.end(), b);
  };
  auto embedded = [](const char* form, std::optional<std::string> v4) -> std::optional<std::string> {
    if (!v4) return std::nullopt;
    return std::string(form) + " of an IPv4 address that is " + *v4;
  };
  // Forms that carry an IPv4 address are judged by that address.
  if (prefix_is({0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff})) {
    return embedded("an IPv4-mapped IPv6 form", forbidden_ipv4(ipv4_at(b + 12)));
  }
  if (prefix_is({0x00, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0})) {
    return embedded("a NAT64 form", forbidden_ipv4(ipv4_at(b + 12)));
  }
  if (prefix_is({0x20, 0x02})) return embedded("a 6to4 form", forbidden_ipv4(ipv4_at(b + 2)));
  if (prefix_is({0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})) {
    return std::string("unspecified, loopback or IPv4-compatible IPv6 (::/96)");
  }
  // Only global unicast (2000::/3) leads anywhere public; inside it, the
  // tunnelling and documentation prefixes do not.
  if ((b[0] & 0xE0) != 0x20) {
    if (b[0] == 0xFF) return std::string("IPv6 multicast (ff00::/8)");
    if ((b[0] & 0xFE) == 0xFC) return std::string("IPv6 unique local (fc00::/7)");
    if (b[0] == 0xFE && (b[1] & 0xC0) == 0x80) return std::string("IPv6 link-local (fe80::/10)");
    return std::string("IPv6 outside global unicast (2000::/3)");
  }
  if (prefix_is({0x20, 0x01, 0x00, 0x00})) return std::string("Teredo (2001::/32)");
  if (prefix_is({0x20, 0x01, 0x0d, 0xb8})) return std::string("IPv6 documentation (2001:db8::/32)");
  return std::nullopt;
}

}  // namespace

std::string NetworkPolicy::to_string() const {
  switch (mode) {
    case NetworkMode::none: return "none";
    case NetworkMode::full: return "full";
    case NetworkMode::allow: break;
  }
  std::string text = "allow:";
  for (size_t i = 0; i < allowed.size(); ++i) text += (i ? "," : "") + allowed[i];
  return text;
}

std::optional<std::string> canonical_domain(std::string_view text) {
  std::string name(text);
  if (!name.empty() && name.back() == '.') name.pop_back();
  if (name.empty() || name.size() > 253) return std::nullopt;
  std::transform(name.begin(), name.end(), name.begin(),
                 [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; });
  size_t start = 0;
  std::string last_label;
  while (start <= name.size()) {
    size_t end = name.find('.', start);
    if (end == std::string::npos) end = name.size();
    const std::string_view label(name.data() + start, end - start);
    if (label.empty() || label.size() > 63) return std::nullopt;
    if (!std::all_of(label.begin(), label.end(), is_label_char)) return std::nullopt;
    if (label.front() == '-' || label.back() == '-') return std::nullopt;
    last_label = label;
    start = end + 1;
  }
  // A numeric last label is an IPv4 literal (or a form a resolver may read as one).
  if (std::all_of(last_label.begin(), last_label.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;
  }
  return name;
}

NetworkPolicy parse_network_policy(std::string_view text) {
  NetworkPolicy policy;
  if (text == "none") return policy;
  if (text == "full") {
    policy.mode = NetworkMode::full;
    return policy;
  }
  if (text.rfind("allow:", 0) != 0) {
    reject("network '" + std::string(text) + "' is not one of none, full, allow:DOMAIN[,DOMAIN...]");
  }
  policy.mode = NetworkMode::allow;
  std::string_view list = text.substr(6);
  size_t start = 0;
  while (start <= list.size()) {
    size_t end = list.find(',', start);
    if (end == std::string_view::npos) end = list.size();
    const std::string_view item = list.substr(start, end - start);
    start = end + 1;
    if (item.empty()) reject("network allowlist '" + std::string(list) + "' has an empty entry");
    auto name = canonical_domain(item);
    if (!name) {
      const std::string shown(item);
      if (item.find('*') != std::string_view::npos) {
        reject("network allowlist entry '" + shown + "': wildcards are not supported; list each name");
      }
      if (item.find("://") != std::string_view::npos || item.find('/') != std::string_view::npos ||
          item.find(':') != std::string_view::npos) {
        reject("network allowlist entry '" + shown +
               "' is not a bare domain name (no scheme, port, path or IPv6 literal)");
      }
      reject("network allowlist entry '" + shown +
             "' is not a domain name (IP addresses are refused: name the host)");
    }
    policy.allowed.push_back(*name);
  }
  std::sort(policy.allowed.begin(), policy.allowed.end());
  policy.allowed.erase(std::unique(policy.allowed.begin(), policy.allowed.end()), policy.allowed.end());
  if (policy.allowed.size() > NetworkPolicy::kMaxAllowedNames) {
    reject("network allowlist has " + std::to_string(policy.allowed.size()) + " names; the limit is " +
           std::to_string(NetworkPolicy::kMaxAllowedNames));
  }
  return policy;
}

std::string Endpoint::describe() const {
  char text[INET6_ADDRSTRLEN] = "?";
  if (address.ss_family == AF_INET) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(&address);
    ::inet_ntop(AF_INET, &v4->sin_addr, text, sizeof text);
    return std::string(text) + ":" + std::to_string(ntohs(v4->sin_port));
  }
  const auto* v6 = reinterpret_cast<const sockaddr_in6*>(&address);
  ::inet_ntop(AF_INET6, &v6->sin6_addr, text, sizeof text);
  return "[" + std::string(text) + "]:" + std::to_string(ntohs(v6->sin6_port));
}

ResolverEntry parse_resolver_entry(std::string_view text) {
  const std::string shown(text);
  const size_t eq = text.find('=');
  if (eq == std::string_view::npos) reject("resolver entry '" + shown + "' is not NAME=ADDRESS[:PORT]");
  ResolverEntry entry;
  auto name = canonical_domain(text.substr(0, eq));
  if (!name)
    reject("resolver entry '" + shown + "': '" + std::string(text.substr(0, eq)) + "' is not a domain name");
  entry.name = *name;
  std::string address(text.substr(eq + 1));
  std::string port;
  bool has_port = false;
  if (!address.empty() && address.front() == '[') {
    const size_t close = address.find(']');
    if (close == std::string::npos) reject("resolver entry '" + shown + "': unclosed '['");
    if (close + 1 < address.size()) {
      if (address[close + 1] != ':') reject("resolver entry '" + shown + "': expected ':PORT' after ']'");
      port = address.substr(close + 2);
      has_port = true;
    }
    address = address.substr(1, close - 1);
  } else if (std::count(address.begin(), address.end(), ':') == 1) {
    const size_t colon = address.find(':');
    port = address.substr(colon + 1);
    address = address.substr(0, colon);
    has_port = true;
  }
  uint16_t port_number = 0;
  if (has_port) {
    if (port.empty() || port.size() > 5 || !std::all_of(port.begin(), port.end(), ::isdigit) ||
        std::stoi(port) < 1 || std::stoi(port) > 65535) {
      reject("resolver entry '" + shown + "': port '" + port + "' is not 1-65535");
    }
    port_number = static_cast<uint16_t>(std::stoi(port));
    entry.pinned = true;
  }
  auto& storage = entry.endpoint.address;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&storage);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&storage);
  if (::inet_pton(AF_INET, address.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port_number);
    entry.endpoint.length = sizeof(sockaddr_in);
  } else if (::inet_pton(AF_INET6, address.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port_number);
    entry.endpoint.length = sizeof(sockaddr_in6);
  } else {
    reject("resolver entry '" + shown + "': '" + address + "' is not an IPv4 or IPv6 address");
  }
  return entry;
}

std::vector<sockaddr_storage> host_addresses() {
  std::vector<sockaddr_storage> addresses;
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) < 0) return addresses;
  for (const ifaddrs* entry = list; entry; entry = entry->ifa_next) {
    const sockaddr* address = entry->ifa_addr;
    if (!address || (address->sa_family != AF_INET && address->sa_family != AF_INET6)) continue;
    sockaddr_storage copy{};
    std::memcpy(&copy, address, address->sa_family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6));
    addresses.push_back(copy);
  }
  ::freeifaddrs(list);
  return addresses;
}

namespace {

bool same_ip(const sockaddr* a, const sockaddr_storage& b) {
  if (a->sa_family != b.ss_family) return false;
  if (a->sa_family == AF_INET) {
    return reinterpret_cast<const sockaddr_in*>(a)->sin_addr.s_addr ==
           reinterpret_cast<const sockaddr_in*>(&b)->sin_addr.s_addr;
  }
  return std::memcmp(&reinterpret_cast<const sockaddr_in6*>(a)->sin6_addr,
                     &reinterpret_cast<const sockaddr_in6*>(&b)->sin6_addr, sizeof(in6_addr)) == 0;
}

}  // namespace

std::optional<std::string> forbidden_address_reason(const sockaddr* address,
                                                    const std::vector<sockaddr_storage>& host) {
  std::optional<std::string> reason;
  if (address->sa_family == AF_INET) {
    reason = forbidden_ipv4(ntohl(reinterpret_cast<const sockaddr_in*>(address)->sin_addr.s_addr));
  } else if (address->sa_family == AF_INET6) {
    reason = forbidden_ipv6(reinterpret_cast<const sockaddr_in6*>(address)->sin6_addr);
  } else {
    return std::string("not an IP address");
  }
  if (reason) return reason;
  for (const auto& own : host) {
    if (same_ip(address, own)) return std::string("one of this host's own addresses");
  }
  return std::nullopt;
}

std::optional<std::string> forbidden_address_reason(const sockaddr* address) {
  return forbidden_address_reason(address, host_addresses());
}

}  // namespace airlock::network
