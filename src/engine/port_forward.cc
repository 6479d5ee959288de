#include "engine/port_forward.h"

#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <condition_variable>
#include <cstring>
#include <deque>
#include <optional>

#include "common/error.h"
#include "common/io.h"
#include "protocol/messages.h"

namespace airlock::engine {

using protocol::FrameType;

namespace {

// The frames of one connection, for its relay thread; an eventfd says
// there is something, so the thread can wait on it and on its client.
class ConnectionInbox : public StreamHandler {
 public:
  ConnectionInbox() : ready_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
    if (!ready_) throw_errno("eventfd");
  }
  void on_frame(const protocol::Frame& frame) override {
    {
      std::lock_guard lock(mutex_);
      if (frame.type == FrameType::port_data) queued_ += frame.payload.size();
      // A guest past its window is cut off, not buffered.
      if (queued_ > protocol::kPortWindow) broken_ = "the guest sent past its window";
      frames_.push_back(frame);
    }
    signal();
  }
  void on_broken(const std::string& reason) override {
    {
      std::lock_guard lock(mutex_);
      if (!broken_) broken_ = reason;
    }
    signal();
  }
  int fd() const { return ready_.get(); }
  // The next frame, if any; nullopt and `broken` set once the mux is gone.
  std::optional<protocol::Frame> next(std::optional<std::string>& broken) {
    uint64_t count;
    ssize_t ignored = ::read(ready_.get(), &count, sizeof count);
    (void)ignored;
    std::lock_guard lock(mutex_);
    broken = broken_;
    if (broken_ || frames_.empty()) return std::nullopt;
    protocol::Frame frame = std::move(frames_.front());
    frames_.pop_front();
    if (frame.type == FrameType::port_data) queued_ -= frame.payload.size();
    if (!frames_.empty()) signal();
    return frame;
  }

 private:
  void signal() {
    uint64_t one = 1;
    ssize_t ignored = ::write(ready_.get(), &one, sizeof one);
    (void)ignored;
  }
  UniqueFd ready_;
  std::mutex mutex_;
  std::deque<protocol::Frame> frames_;
  uint64_t queued_ = 0;
  std::optional<std::string> broken_;
};

// Writes all of `data` to the client, waiting while it is slow; false if it
// went away or `stop` fired.
bool write_to_client(int client, std::string_view data, int stop_fd) {
  while (!data.empty()) {
    const ssize_t n = ::send(client, data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      data.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno != EAGAIN && errno != EINTR) return false;
    pollfd fds[2] = {{client, POLLOUT, 0}, {stop_fd, POLLIN, 0}};
    if (::poll(fds, 2, 10'000) <= 0 || fds[1].revents) return false;
  }
  return true;
}

}  // namespace

PortForward::PortForward(std::shared_ptr<GuestMux> mux, uint16_t guest_port)
    : mux_(std::move(mux)), guest_port_(guest_port) {
  listener_ = UniqueFd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!listener_) throw_errno("socket");
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  if (::bind(listener_.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) < 0) throw_errno("bind");
  if (::listen(listener_.get(), 64) < 0) throw_errno("listen");
  if (::getsockname(listener_.get(), reinterpret_cast<sockaddr*>(&address), &length) < 0) {
    throw_errno("getsockname");
  }
  host_port_ = ntohs(address.sin_port);
  acceptor_ = std::thread([this] { accept_loop(); });
}

PortForward::~PortForward() {
  stop_.cancel();
  acceptor_.join();
  std::vector<std::thread> relays;
  {
    std::lock_guard lock(mutex_);
    relays.swap(relays_);
  }
  for (auto& thread : relays) thread.join();
}

int PortForward::connections() const {
  std::lock_guard lock(mutex_);
  return connections_;
}

void PortForward::accept_loop() {
  for (;;) {
    pollfd fds[2] = {{listener_.get(), POLLIN, 0}, {stop_.fd(), POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0 && errno != EINTR) return;
    if (fds[1].revents) return;
    UniqueFd client(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
    if (!client) continue;
    std::lock_guard lock(mutex_);
    // Threads of connections that ended are joined here, so they never pile up.
    for (auto it = relays_.begin(); it != relays_.end();) {
      if (finished_.count(it->get_id())) {
        finished_.erase(it->get_id());
        it->join();
        it = relays_.erase(it);
      } else {
        ++it;
      }
    }
    if (connections_ >= kMaxConnections) continue;  // closed: the client sees a reset
    ++connections_;
    relays_.emplace_back([this, fd = std::move(client)]() mutable { relay(std::move(fd)); });
  }
}

void PortForward::relay(UniqueFd client) {
  auto inbox = std::make_shared<ConnectionInbox>();
  uint32_t stream = 0;
  try {
    stream = mux_->open_stream(inbox);
    mux_->send(FrameType::port_open, stream, protocol::PortOpen{guest_port_}.to_payload());
    uint64_t sent = 0, acked = 0;  // client -> guest
    bool client_closed = false, guest_closed = false, opened = false, failed = false;
    while (!failed && !(client_closed && guest_closed)) {
      const bool may_read = opened && !client_closed && sent - acked < protocol::kPortWindow;
      pollfd fds[3] = {{client.get(), static_cast<short>(may_read ? POLLIN : 0), 0},
                       {inbox->fd(), POLLIN, 0},
                       {stop_.fd(), POLLIN, 0}};
      if (::poll(fds, 3, -1) < 0 && errno != EINTR) break;
      if (fds[2].revents) break;
      if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
        char buffer[protocol::kDataChunk];
        const size_t room =
            static_cast<size_t>(std::min<uint64_t>(sizeof buffer, protocol::kPortWindow - (sent - acked)));
        auto n = read_some(client.get(), buffer, room);
        if (n && *n > 0) {
          mux_->send(FrameType::port_data, stream, std::string_view(buffer, *n));
          sent += *n;
        } else if (n) {
          client_closed = true;
          mux_->send(FrameType::port_close, stream, "{}");
        }
      }
      std::optional<std::string> broken;
      while (auto frame = inbox->next(broken)) {
        if (frame->type == FrameType::port_opened) {
          opened = true;
        } else if (frame->type == FrameType::port_data) {
          if (!write_to_client(client.get(), frame->payload, stop_.fd())) {
            failed = true;
            break;
          }
          mux_->send(FrameType::port_ack, stream, protocol::FileAck{frame->payload.size()}.to_payload());
        } else if (frame->type == FrameType::port_ack) {
          acked = std::min(sent, acked + protocol::FileAck::parse(frame->payload).bytes);
        } else if (frame->type == FrameType::port_close) {
          guest_closed = true;
          ::shutdown(client.get(), SHUT_WR);
        } else {
          failed = true;  // an error: nothing listens there, or the guest's end broke
          break;
        }
      }
      if (broken) break;
    }
    if (!(client_closed && guest_closed)) mux_->send(FrameType::cancel, stream);
  } catch (const Error&) {
    // The mux is broken (the sandbox stopped): the connection just ends.
  }
  if (stream) mux_->close_stream(stream);
  client.reset();
  std::lock_guard lock(mutex_);
  --connections_;
  finished_.insert(std::this_thread::get_id());
}

}  // namespace airlock::engine
