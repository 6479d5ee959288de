#include "guest/network_setup.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <cstring>
#include <filesystem>

#include "common/error.h"
#include "common/io.h"
#include "common/unique_fd.h"
#include "guest/system_setup.h"

namespace airlock::guest {

namespace {

sockaddr ipv4_sockaddr(const std::string& text) {
  sockaddr address{};
  auto* v4 = reinterpret_cast<sockaddr_in*>(&address);
  v4->sin_family = AF_INET;
  if (::inet_pton(AF_INET, text.c_str(), &v4->sin_addr) != 1) {
    throw Error(ErrorCode::invalid_argument, "'" + text + "' is not an IPv4 address");
  }
  return address;
}

ifreq request_for(const std::string& interface) {
  ifreq request{};
  std::strncpy(request.ifr_name, interface.c_str(), IFNAMSIZ - 1);
  return request;
}

void set_up(int socket, const std::string& interface) {
  ifreq request = request_for(interface);
  if (::ioctl(socket, SIOCGIFFLAGS, &request) < 0) throw_errno("SIOCGIFFLAGS", interface);
  request.ifr_flags |= IFF_UP | IFF_RUNNING;
  if (::ioctl(socket, SIOCSIFFLAGS, &request) < 0) throw_errno("SIOCSIFFLAGS", interface);
}

UniqueFd control_socket() {
  UniqueFd socket(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!socket) throw_errno("socket", "AF_INET");
  return socket;
}

std::string ethernet_interface() {
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator("/sys/class/net", error)) {
    const std::string name = entry.path().filename();
    if (name != "lo") return name;
  }
  throw Error(ErrorCode::unavailable, "this guest has no network interface (virtio-net)");
}

std::string netmask_of(int prefix_length) {
  const uint32_t mask = prefix_length == 0 ? 0 : ~uint32_t{0} << (32 - prefix_length);
  in_addr address{htonl(mask)};
  char text[INET_ADDRSTRLEN];
  ::inet_ntop(AF_INET, &address, text, sizeof text);
  return text;
}

}  // namespace

void bring_up_loopback() {
  UniqueFd socket = control_socket();
  set_up(socket.get(), "lo");
}

void configure_network(const protocol::NetworkSetup& setup) {
  const std::string interface = ethernet_interface();
  UniqueFd socket = control_socket();
  ifreq request = request_for(interface);
  request.ifr_addr = ipv4_sockaddr(setup.address);
  if (::ioctl(socket.get(), SIOCSIFADDR, &request) < 0) throw_errno("SIOCSIFADDR", interface);
  request = request_for(interface);
  request.ifr_netmask = ipv4_sockaddr(netmask_of(setup.prefix_length));
  if (::ioctl(socket.get(), SIOCSIFNETMASK, &request) < 0) throw_errno("SIOCSIFNETMASK", interface);
  set_up(socket.get(), interface);
  if (!setup.gateway.empty()) {
    rtentry route{};
    route.rt_dst = ipv4_sockaddr("0.0.0.0");
    route.rt_genmask = ipv4_sockaddr("0.0.0.0");
    route.rt_gateway = ipv4_sockaddr(setup.gateway);
    route.rt_flags = RTF_UP | RTF_GATEWAY;
    std::string device = interface;
    route.rt_dev = device.data();
    if (::ioctl(socket.get(), SIOCADDRT, &route) < 0)
      throw_errno("SIOCADDRT", "default via " + setup.gateway);
  }
  // Programs see the image's /etc: names resolve from these files only.
  std::string hosts =
      "127.0.0.1 localhost\n127.0.1.1 sandbox\n::1 localhost ip6-localhost ip6-loopback\n"
      "# allowed by this sandbox's network policy; the host checks every connection\n";
  for (const auto& [name, address] : setup.hosts) hosts += address + " " + name + "\n";
  write_file(std::string(kRootfsMount) + "/etc/hosts", hosts, 0644);
  write_file(std::string(kRootfsMount) + "/etc/resolv.conf",
             setup.nameserver.empty() ? "# no DNS in this sandbox: allowed names are in /etc/hosts\n"
                                      : "nameserver " + setup.nameserver + "\n",
             0644);
}

}  // namespace airlock::guest
