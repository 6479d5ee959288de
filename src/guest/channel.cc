#include "guest/channel.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <ctime>

#include "common/error.h"
#include "common/io.h"

namespace airlock::guest {

Channel::Channel(UniqueFd port) : port_(std::move(port)) { set_nonblocking(port_.get()); }

void Channel::send(protocol::FrameType type, uint32_t stream, std::string_view payload) {
  // The payload is written from where it lies: under emulation every copy
  // of a file's bytes in the guest costs as much as the channel itself.
  const std::string header = protocol::encode_frame_header(type, stream, payload.size());
  iovec parts[2] = {{const_cast<char*>(header.data()), header.size()},
                    {const_cast<char*>(payload.data()), payload.size()}};
  size_t index = 0;
  while (index < 2) {
    if (parts[index].iov_len == 0) {
      ++index;
      continue;
    }
    const ssize_t n = ::writev(port_.get(), parts + index, static_cast<int>(2 - index));
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        pollfd p{port_.get(), POLLOUT, 0};
        ::poll(&p, 1, 1000);
        continue;
      }
      throw_errno("write", "virtio port");
    }
    // Past what went: whole parts, then part of one.
    for (size_t written = static_cast<size_t>(n); written > 0;) {
      const size_t taken = std::min(written, parts[index].iov_len);
      parts[index].iov_base = static_cast<char*>(parts[index].iov_base) + taken;
      parts[index].iov_len -= taken;
      written -= taken;
      if (parts[index].iov_len == 0) ++index;
    }
  }
}

bool Channel::pump() {
  // At most about a megabyte at a time: what the host sends faster than
  // the agent handles it (an upload to a slow disk) waits in the channel,
  // not in our memory. Read straight into the decoder: one copy.
  constexpr size_t kRead = 256 * 1024;
  while (decoder_.buffered() < kMaxBuffered) {
    char* room = decoder_.prepare(kRead);
    auto n = read_some(port_.get(), room, kRead);
    if (!n) return true;
    // A virtio console port reads 0 while the host side is not connected.
    if (*n == 0) return false;
    decoder_.commit(*n);
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
