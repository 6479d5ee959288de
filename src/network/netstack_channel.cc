#include "network/netstack_channel.h"

#include <sys/socket.h>

#include <cstring>

#include "common/error.h"
#include "common/io.h"

namespace airlock::network {

namespace {

struct Header {
  uint32_t type;
  uint32_t id;
  uint32_t route;
};

constexpr size_t kMaxDatagram = sizeof(Header) + kMaxNetstackText;

}  // namespace

std::pair<UniqueFd, UniqueFd> make_netstack_channel() {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) < 0)
    throw_errno("socketpair(SOCK_SEQPACKET)");
  return {UniqueFd(fds[0]), UniqueFd(fds[1])};
}

void send_netstack_message(int channel, const NetstackMessage& message) {
  char datagram[kMaxDatagram];
  const Header header{static_cast<uint32_t>(message.type), message.id, message.route};
  std::memcpy(datagram, &header, sizeof header);
  const size_t text = std::min(message.text.size(), kMaxNetstackText);
  std::memcpy(datagram + sizeof header, message.text.data(), text);
  iovec vector{datagram, sizeof header + text};
  msghdr envelope{};
  envelope.msg_iov = &vector;
  envelope.msg_iovlen = 1;
  FdControl control;
  if (message.fd) attach_fd(envelope, control, message.fd.get());
  for (;;) {
    if (::sendmsg(channel, &envelope, MSG_NOSIGNAL) >= 0) return;
    if (errno != EINTR) throw_errno("sendmsg(netstack channel)");
  }
}

std::optional<NetstackMessage> receive_netstack_message(int channel, bool accept_fd, bool wait) {
  char datagram[kMaxDatagram + 1];
  iovec vector{datagram, sizeof datagram};
  msghdr envelope{};
  envelope.msg_iov = &vector;
  envelope.msg_iovlen = 1;
  // Room for more than one descriptor, so that extra ones are received (and closed), not left in flight.
  alignas(cmsghdr) char control[CMSG_SPACE(4 * sizeof(int))];
  envelope.msg_control = control;
  envelope.msg_controllen = sizeof control;
  ssize_t n;
  do {
    n = ::recvmsg(channel, &envelope, MSG_CMSG_CLOEXEC | (wait ? 0 : MSG_DONTWAIT));
  } while (n < 0 && errno == EINTR);
  if (n < 0 && !wait && (errno == EAGAIN || errno == EWOULDBLOCK)) return std::nullopt;
  if (n < 0) throw_errno("recvmsg(netstack channel)");
  if (n == 0) return std::nullopt;

  NetstackMessage message;
  for (cmsghdr* attached = CMSG_FIRSTHDR(&envelope); attached; attached = CMSG_NXTHDR(&envelope, attached)) {
    if (attached->cmsg_level != SOL_SOCKET || attached->cmsg_type != SCM_RIGHTS) continue;
    const size_t count = (attached->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(attached) + i * sizeof(int), sizeof fd);
      UniqueFd received(fd);
      if (accept_fd && !message.fd) message.fd = std::move(received);
    }
  }
  if ((envelope.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) || static_cast<size_t>(n) < sizeof(Header) ||
      static_cast<size_t>(n) > kMaxDatagram) {
    throw Error(ErrorCode::protocol, "netstack channel: a datagram of " + std::to_string(n) + " bytes");
  }
  Header header;
  std::memcpy(&header, datagram, sizeof header);
  if (header.type < static_cast<uint32_t>(NetstackMessageType::connect) ||
      header.type > static_cast<uint32_t>(NetstackMessageType::refused)) {
    throw Error(ErrorCode::protocol, "netstack channel: unknown message type " + std::to_string(header.type));
  }
  message.type = static_cast<NetstackMessageType>(header.type);
  message.id = header.id;
  message.route = header.route;
  message.text.assign(datagram + sizeof header, static_cast<size_t>(n) - sizeof header);
  if (message.type != NetstackMessageType::connected) message.fd.reset();
  return message;
}

}  // namespace airlock::network
