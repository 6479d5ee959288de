#include "guest/channel.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <ctime>

#include "common/error.h"
#include "common/io.h"

namespace airlock::guest {

Channel::Channel(UniqueFd port) : port_(std::move(port)) { set_nonblocking(port_.get()); }

void Channel::send(protocol::FrameType type, uint32_t stream, std::string_view payload) {
  std::string frame = protocol::encode_frame(type, stream, payload);
  std::string_view rest = frame;
  while (!rest.empty()) {
    ssize_t n = ::write(port_.get(), rest.data(), rest.size());
    if (n >= 0) {
      rest.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN) {
      pollfd p{port_.get(), POLLOUT, 0};
      ::poll(&p, 1, 1000);
      continue;
    }
    throw_errno("write", "virtio port");
  }
}

bool Channel::pump() {
  char buffer[65536];
  // At most about a megabyte at a time: what the host sends faster than
  // the agent handles it (an upload to a slow disk) waits in the channel,
  // not in our memory.
  while (decoder_.buffered() < kMaxBuffered) {
    auto n = read_some(port_.get(), buffer, sizeof buffer);
    if (!n) return true;
    // A virtio console port reads 0 while the host side is not connected.
    if (*n == 0) return false;
    decoder_.feed(std::string_view(buffer, *n));
  }
  return true;
}

std::optional<protocol::Frame> Channel::receive() {
  for (;;) {
    if (auto frame = decoder_.next()) return frame;
    pollfd p{port_.get(), POLLIN, 0};
    int r = ::poll(&p, 1, -1);
    if (r < 0 && errno != EINTR) throw_errno("poll", "virtio port");
    if (r > 0 && (p.revents & (POLLIN | POLLHUP | POLLERR))) {
      if (!pump()) return std::nullopt;
      // POLLHUP with nothing readable: the host end is closed.
      if ((p.revents & POLLHUP) && !(p.revents & POLLIN)) return std::nullopt;
    }
  }
}

UniqueFd open_named_port(const std::string& name, int timeout_ms) {
  const std::string base = "/sys/class/virtio-ports";
  for (int waited = 0;; waited += 10) {
    if (DIR* dir = ::opendir(base.c_str())) {
      while (dirent* entry = ::readdir(dir)) {
        if (entry->d_name[0] == '.') continue;
        std::string port = entry->d_name;
        std::string port_name;
        try {
          port_name = read_file(base + "/" + port + "/name", 256);
        } catch (const Error&) {
          continue;
        }
        while (!port_name.empty() && port_name.back() == '\n') port_name.pop_back();
        if (port_name != name) continue;
        ::closedir(dir);
        std::string dev = "/dev/" + port;
        UniqueFd fd(::open(dev.c_str(), O_RDWR | O_CLOEXEC | O_NOCTTY));
        if (!fd) throw_errno("open", dev);
        return fd;
      }
      ::closedir(dir);
    }
    if (waited >= timeout_ms) break;
    timespec pause{0, 10'000'000};
    ::nanosleep(&pause, nullptr);
  }
  throw Error(ErrorCode::not_found, "no virtio port named '" + name + "' appeared");
}

}  // namespace airlock::guest
