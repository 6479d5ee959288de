#include "engine/guest_mux.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <vector>

#include "common/error.h"
#include "common/io.h"
#include "engine/guest_session.h"
#include "protocol/messages.h"

namespace airlock::engine {

using protocol::FrameType;

namespace {

// Bulk senders wait while this much is queued, so an upload never holds
// more than this of its file on the host.
constexpr size_t kOutboxBound = 1 << 20;

}  // namespace

GuestMux::GuestMux(vmm::Vm& vm, protocol::FrameDecoder decoder)
    : vm_(vm), decoder_(std::move(decoder)), wake_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
  if (!wake_) throw_errno("eventfd");
  set_nonblocking(vm_.channel_fd());
  thread_ = std::thread([this] { pump(); });
}

GuestMux::~GuestMux() { shutdown(); }

void GuestMux::shutdown(const std::string& reason) {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake();
  {
    std::lock_guard lock(join_mutex_);
    if (thread_.joinable()) thread_.join();
  }
  break_with(reason);
}

void GuestMux::wake() {
  uint64_t one = 1;
  ssize_t ignored = ::write(wake_.get(), &one, sizeof one);
  (void)ignored;
}

uint32_t GuestMux::open_stream(std::shared_ptr<StreamHandler> handler) {
  std::lock_guard lock(mutex_);
  if (broken_) throw Error(ErrorCode::vm, *broken_);
  const uint32_t stream = next_stream_++;
  handlers_.emplace(stream, std::move(handler));
  return stream;
}

void GuestMux::close_stream(uint32_t stream) {
  std::lock_guard lock(mutex_);
  handlers_.erase(stream);
}

void GuestMux::send(FrameType type, uint32_t stream, std::string_view payload) {
  send_encoded(protocol::encode_frame(type, stream, payload));
}

void GuestMux::send_encoded(std::string frames) {
  {
    std::lock_guard lock(mutex_);
    if (broken_) throw Error(ErrorCode::vm, *broken_);
    if (outbox_.empty()) {
      outbox_ = std::move(frames);
    } else {
      outbox_ += frames;
    }
  }
  wake();
}

void GuestMux::send_bulk(FrameType type, uint32_t stream, std::string_view payload,
                         SteadyClock::time_point deadline) {
  std::string frame = protocol::encode_frame(type, stream, payload);
  {
    std::unique_lock lock(mutex_);
    if (!room_.wait_until(lock, deadline, [&] { return broken_ || outbox_.size() < kOutboxBound; })) {
      throw Error(ErrorCode::vm, "the guest stopped taking data");
    }
    if (broken_) throw Error(ErrorCode::vm, *broken_);
    outbox_ += frame;
  }
  wake();
}

namespace {

// Waits for the guest's one answer on a stream of its own.
class OneReply : public StreamHandler {
 public:
  OneReply(FrameType expected, std::string doing) : expected_(expected), doing_(std::move(doing)) {}
  void on_frame(const protocol::Frame& frame) override {
    std::lock_guard lock(mutex_);
    if (answer_ || broken_) return;
    if (frame.type == expected_) {
      answer_ = frame;
    } else if (frame.type == FrameType::error) {
      broken_ = "the guest could not " + doing_ + ": " + protocol::ErrorReport::parse(frame.payload).message;
    } else {
      broken_ =
          "the guest answered " + std::string(protocol::to_string(frame.type)) + " when asked to " + doing_;
    }
    changed_.notify_all();
  }
  void on_broken(const std::string& reason) override {
    std::lock_guard lock(mutex_);
    broken_ = reason;
    changed_.notify_all();
  }
  protocol::Frame wait(SteadyClock::time_point deadline) {
    std::unique_lock lock(mutex_);
    if (!changed_.wait_until(lock, deadline, [&] { return answer_ || broken_; })) {
      throw Error(ErrorCode::vm, "the guest did not " + doing_ + " in time");
    }
    if (!answer_) throw Error(ErrorCode::vm, *broken_);
    return *answer_;
  }

 private:
  const FrameType expected_;
  const std::string doing_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::optional<protocol::Frame> answer_;
  std::optional<std::string> broken_;
};

}  // namespace

protocol::Frame GuestMux::ask(FrameType type, std::string_view payload, FrameType answer,
                              const std::string& doing, SteadyClock::time_point deadline) {
  auto reply = std::make_shared<OneReply>(answer, doing);
  const uint32_t stream = open_stream(reply);
  try {
    send(type, stream, payload);
    protocol::Frame frame = reply->wait(deadline);
    close_stream(stream);
    return frame;
  } catch (const Error&) {
    close_stream(stream);
    throw;
  }
}

void GuestMux::quiesce(SteadyClock::time_point deadline) {
  auto reply = std::make_shared<OneReply>(FrameType::quiesced, "quiesce for the snapshot");
  const uint32_t stream = open_stream(reply);
  {
    std::lock_guard lock(mutex_);
    if (broken_) {
      handlers_.erase(stream);
      throw Error(ErrorCode::vm, *broken_);
    }
    if (sendable_) throw Error(ErrorCode::internal, "the guest is quiesced already");
    outbox_ += protocol::encode_frame(FrameType::quiesce, stream, {});
    sendable_ = outbox_.size();
  }
  wake();
  try {
    reply->wait(deadline);
  } catch (const Error&) {
    close_stream(stream);
    thaw();
    throw;
  }
  close_stream(stream);
}

void GuestMux::thaw() {
  {
    std::lock_guard lock(mutex_);
    if (!sendable_) return;
    outbox_.insert(*sendable_, protocol::encode_frame(FrameType::thaw, 0, {}));
    sendable_.reset();
  }
  wake();
}

std::optional<std::string> GuestMux::broken() const {
  std::lock_guard lock(mutex_);
  return broken_;
}

void GuestMux::break_with(const std::string& reason) {
  std::map<uint32_t, std::shared_ptr<StreamHandler>> handlers;
  {
    std::lock_guard lock(mutex_);
    if (!broken_) broken_ = reason;
    handlers.swap(handlers_);
    outbox_.clear();
    if (sendable_) sendable_ = 0;
  }
  room_.notify_all();
  for (auto& [stream, handler] : handlers) handler->on_broken(*broken());
}

void GuestMux::pump() {
  const int channel = vm_.channel_fd();
  std::vector<char> buffer(1 << 16);
  try {
    for (;;) {
      // Deliver what is decoded, outside the lock: a handler may send.
      while (auto frame = decoder_.next()) {
        std::shared_ptr<StreamHandler> handler;
        {
          std::lock_guard lock(mutex_);
          auto it = handlers_.find(frame->stream);
          if (it != handlers_.end()) handler = it->second;
        }
        if (handler) handler->on_frame(*frame);
      }
      bool want_write;
      {
        std::lock_guard lock(mutex_);
        if (stopping_) return;
        want_write = sendable_ ? *sendable_ > 0 : !outbox_.empty();
      }
      pollfd fds[4] = {
          {channel, static_cast<short>(POLLIN | (want_write ? POLLOUT : 0)), 0},
          {vm_.exit_fd(), POLLIN, 0},
          {vm_.console_fd(), POLLIN, 0},
          {wake_.get(), POLLIN, 0},
      };
      if (::poll(fds, 4, 60'000) < 0 && errno != EINTR) throw_errno("poll");
      if (fds[2].revents) vm_.drain_console();
      if (fds[3].revents) {
        uint64_t count;
        ssize_t ignored = ::read(wake_.get(), &count, sizeof count);
        (void)ignored;
      }
      if (fds[0].revents & POLLOUT) {
        std::lock_guard lock(mutex_);
        // MSG_NOSIGNAL: a VM that died must not take this process down with SIGPIPE.
        const size_t size = sendable_ ? *sendable_ : outbox_.size();
        ssize_t n = size == 0 ? 0 : ::send(channel, outbox_.data(), size, MSG_NOSIGNAL);
        if (n > 0) {
          outbox_.erase(0, static_cast<size_t>(n));
          if (sendable_) *sendable_ -= static_cast<size_t>(n);
          if (outbox_.size() < kOutboxBound) room_.notify_all();
        } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
          outbox_.clear();  // QEMU is gone; the exit fd tells the rest
          if (sendable_) sendable_ = 0;
        }
      }
      if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
        for (int reads = 0; reads < 16; ++reads) {
          auto n = read_some(channel, buffer.data(), buffer.size());
          if (!n) break;
          if (*n == 0) {
            break_with(describe_vm_stop(vm_));
            return;
          }
          decoder_.feed(std::string_view(buffer.data(), *n));
          // Decode before reading more, so buffered bytes stay bounded.
          if (decoder_.buffered() > protocol::kHeaderSize + protocol::kMaxPayload) break;
        }
      }
      if (fds[1].revents && !(fds[0].revents & POLLIN)) {
        break_with(describe_vm_stop(vm_));
        return;
      }
    }
  } catch (const Error& e) {
    break_with(e.code() == ErrorCode::protocol ? std::string("the guest broke the protocol: ") + e.what()
                                               : std::string(e.what()));
  }
}

}  // namespace airlock::engine
