// A scripted stand-in for a guest: the test plays the agent's side of the
// channel, byte for byte, to show what the host does with a hostile guest.
#pragma once

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "common/io.h"
#include "protocol/frame.h"
#include "vmm/vm_backend.h"

namespace airlock::engine::fakes {

using protocol::FrameType;

class FakeVm final : public vmm::Vm {
 public:
  FakeVm() : stopped_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
    auto [host, guest] = make_socket_pair();
    host_ = std::move(host);
    guest_ = std::move(guest);
  }
  int channel_fd() const override { return host_.get(); }
  int exit_fd() const override { return stopped_.get(); }
  int console_fd() const override { return -1; }
  void drain_console() override {}
  std::string console_tail() const override { return "fake console"; }
  std::optional<std::string> exit_reason() override {
    if (!stopped_flag_) return std::nullopt;
    return "fake VM stopped";
  }
  void destroy() override { stop(); }
  void restore_snapshot(const std::string&, std::chrono::milliseconds, bool) override {
    throw Error(ErrorCode::unavailable, "fake VMs have no snapshots");
  }
  void save_snapshot(const std::string&) override {
    throw Error(ErrorCode::unavailable, "fake VMs have no snapshots");
  }

  // Test side: what the guest writes, and what it reads.
  int guest_fd() const { return guest_.get(); }
  void send(FrameType type, uint32_t stream, std::string_view payload) {
    send_raw(protocol::encode_frame(type, stream, payload));
  }
  // Waits while the channel is full (frames_from_host leaves it non-blocking).
  void send_raw(std::string_view bytes) {
    while (!bytes.empty()) {
      const ssize_t n = ::write(guest_.get(), bytes.data(), bytes.size());
      if (n > 0) {
        bytes.remove_prefix(static_cast<size_t>(n));
      } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        pollfd writable{guest_.get(), POLLOUT, 0};
        ::poll(&writable, 1, 100);
      } else {
        throw_errno("write", "the fake guest's channel");
      }
    }
  }
  void hang_up() { guest_.reset(); }
  void stop() {
    stopped_flag_ = true;
    uint64_t one = 1;
    ssize_t ignored = ::write(stopped_.get(), &one, sizeof one);
    (void)ignored;
  }
  std::vector<protocol::Frame> frames_from_host() {
    set_nonblocking(guest_.get());
    char buffer[65536];
    while (auto n = read_some(guest_.get(), buffer, sizeof buffer)) {
      if (*n == 0) break;
      decoder_.feed(std::string_view(buffer, *n));
    }
    std::vector<protocol::Frame> frames;
    while (auto frame = decoder_.next()) frames.push_back(*frame);
    return frames;
  }

 private:
  UniqueFd host_, guest_, stopped_;
  bool stopped_flag_ = false;
  protocol::FrameDecoder decoder_;
};

// A frame header with any length and type byte, as a hostile guest may send.
inline std::string raw_header(uint32_t length, uint8_t type, uint32_t stream = 1) {
  std::string bytes = protocol::encode_frame(FrameType::stdout_data, stream, "");
  for (int i = 0; i < 4; ++i) bytes[i] = static_cast<char>((length >> (8 * i)) & 0xff);
  bytes[4] = static_cast<char>(type);
  return bytes;
}

}  // namespace airlock::engine::fakes
