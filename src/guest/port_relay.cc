#include "guest/port_relay.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include "common/error.h"
#include "common/io.h"
#include "protocol/messages.h"

namespace airlock::guest {

using protocol::FrameType;

PortRelay::PortRelay(Channel& channel, const protocol::Frame& open_frame)
    : channel_(channel), stream_(open_frame.stream) {
  const auto request = protocol::PortOpen::parse(open_frame.payload);
  UniqueFd socket(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(request.port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  // Loopback connects at once (or is refused at once): no need to wait in the loop.
  if (!socket || ::connect(socket.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) < 0) {
    const std::string reason = std::strerror(errno);
    channel_.send(
        FrameType::error, stream_,
        protocol::ErrorReport{"connect to port " + std::to_string(request.port) + " in the guest: " + reason,
                              "not_found"}
            .to_payload());
    return;
  }
  set_nonblocking(socket.get());
  socket_ = std::move(socket);
  channel_.send(FrameType::port_opened, stream_, "{}");
}

void PortRelay::fail(const std::string& what) {
  channel_.send(FrameType::error, stream_, protocol::ErrorReport{what}.to_payload());
  socket_.reset();
}

void PortRelay::on_frame(const protocol::Frame& frame) {
  if (!socket_) return;
  switch (frame.type) {
    case FrameType::port_data:
      if (pending_.size() + frame.payload.size() > protocol::kPortWindow) {
        return fail("the host sent port data past its window");
      }
      pending_ += frame.payload;
      break;
    case FrameType::port_ack:
      acked_ = std::min(sent_, acked_ + protocol::FileAck::parse(frame.payload).bytes);
      break;
    case FrameType::port_close: host_closed_ = true; break;
    case FrameType::cancel: socket_.reset(); break;
    default: break;
  }
}

void PortRelay::add_to_poll(std::vector<pollfd>& fds) {
  poll_index_ = fds.size();
  short events = 0;
  if (socket_ && !guest_closed_ && sent_ - acked_ < protocol::kPortWindow) events |= POLLIN;
  if (socket_ && !pending_.empty()) events |= POLLOUT;
  fds.push_back({socket_ ? socket_.get() : -1, events, 0});
}

void PortRelay::handle_poll(const std::vector<pollfd>& fds) {
  if (!socket_) return;
  const short revents = fds[poll_index_].revents;
  if (!pending_.empty() && (revents & (POLLOUT | POLLERR | POLLHUP))) {
    const ssize_t n = ::send(socket_.get(), pending_.data(), pending_.size(), MSG_NOSIGNAL);
    if (n > 0) {
      pending_.erase(0, static_cast<size_t>(n));
      channel_.send(FrameType::port_ack, stream_, protocol::FileAck{static_cast<uint64_t>(n)}.to_payload());
    } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
      return fail(std::string("write to the guest's port: ") + std::strerror(errno));
    }
  }
  if (!guest_closed_ && (revents & (POLLIN | POLLHUP | POLLERR))) {
    char buffer[protocol::kDataChunk];
    const size_t room =
        static_cast<size_t>(std::min<uint64_t>(sizeof buffer, protocol::kPortWindow - (sent_ - acked_)));
    auto n = room > 0 ? read_some(socket_.get(), buffer, room) : std::nullopt;
    if (n && *n > 0) {
      channel_.send(FrameType::port_data, stream_, std::string_view(buffer, *n));
      sent_ += *n;
    } else if (n && *n == 0) {
      guest_closed_ = true;
      channel_.send(FrameType::port_close, stream_, "{}");
    }
  }
  if (host_closed_ && pending_.empty() && !shut_down_) {
    ::shutdown(socket_.get(), SHUT_WR);
    shut_down_ = true;
  }
}

}  // namespace airlock::guest
