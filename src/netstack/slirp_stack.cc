#include "netstack/slirp_stack.h"

#include <arpa/inet.h>
#include <libslirp.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>

#include "common/error.h"
#include "common/io.h"
#include "network/guest_link.h"

namespace airlock::netstack {

namespace {

// Ethernet frames QEMU hands over carry at most 64 KiB (plus headers).
constexpr size_t kMaxFrame = 65536 + 64;
constexpr size_t kMaxQueuedToGuest = 4 << 20;

in_addr ipv4(const std::string& text) {
  in_addr address{};
  if (::inet_pton(AF_INET, text.c_str(), &address) != 1) {
    throw Error(ErrorCode::invalid_argument, "bad IPv4 address " + text);
  }
  return address;
}

int64_t monotonic_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// libslirp's poll flags and poll(2)'s, side by side.
constexpr std::pair<int, short> kPollFlags[] = {{SLIRP_POLL_IN, POLLIN},
                                                {SLIRP_POLL_OUT, POLLOUT},
                                                {SLIRP_POLL_PRI, POLLPRI},
                                                {SLIRP_POLL_ERR, POLLERR},
                                                {SLIRP_POLL_HUP, POLLHUP}};

short to_poll_events(int slirp_events) {
  short events = 0;
  for (const auto& [slirp_flag, poll_flag] : kPollFlags) {
    if (slirp_events & slirp_flag) events |= poll_flag;
  }
  return events;
}

int to_slirp_events(short events) {
  int slirp_events = 0;
  for (const auto& [slirp_flag, poll_flag] : kPollFlags) {
    if (events & poll_flag) slirp_events |= slirp_flag;
  }
  return slirp_events;
}

}  // namespace

// libslirp calls back into this through the opaque pointer, all on the thread of run().
struct SlirpStack::State {
  struct Timer {
    SlirpTimerCb callback = nullptr;  // legacy timers
    void* callback_opaque = nullptr;
    SlirpTimerId id = SLIRP_TIMER_RA;
    bool by_id = false;
    int64_t expire_ms = -1;
  };

  Slirp* slirp = nullptr;
  std::string to_guest;  // 4-byte big-endian length, frame, ...
  std::string from_guest;
  std::vector<pollfd> fds;
  std::vector<std::unique_ptr<Timer>> timers;

  ~State() {
    if (slirp) slirp_cleanup(slirp);
  }

  static State& of(void* opaque) { return *static_cast<State*>(opaque); }

  static ssize_t send_packet(const void* frame, size_t length, void* opaque) {
    State& state = of(opaque);
    // A guest that does not drain its queue loses frames; TCP resends them.
    if (state.to_guest.size() > kMaxQueuedToGuest) return static_cast<ssize_t>(length);
    const uint32_t size = htonl(static_cast<uint32_t>(length));
    state.to_guest.append(reinterpret_cast<const char*>(&size), 4);
    state.to_guest.append(static_cast<const char*>(frame), length);
    return static_cast<ssize_t>(length);
  }
  static void guest_error(const char*, void*) {}
  static int64_t clock_get_ns(void*) { return monotonic_ns(); }
  static void* timer_new(SlirpTimerCb callback, void* callback_opaque, void* opaque) {
    auto timer = std::make_unique<Timer>();
    timer->callback = callback;
    timer->callback_opaque = callback_opaque;
    return of(opaque).timers.emplace_back(std::move(timer)).get();
  }
  static void* timer_new_opaque(SlirpTimerId id, void* callback_opaque, void* opaque) {
    auto timer = std::make_unique<Timer>();
    timer->id = id;
    timer->callback_opaque = callback_opaque;
    timer->by_id = true;
    return of(opaque).timers.emplace_back(std::move(timer)).get();
  }
  static void timer_free(void* timer, void* opaque) {
    auto& timers = of(opaque).timers;
    timers.erase(
        std::remove_if(timers.begin(), timers.end(), [timer](const auto& t) { return t.get() == timer; }),
        timers.end());
  }
  static void timer_mod(void* timer, int64_t expire_ms, void*) {
    static_cast<Timer*>(timer)->expire_ms = expire_ms;
  }
  static void register_poll_fd(int, void*) {}
  static void unregister_poll_fd(int, void*) {}
  static void notify(void*) {}
  static int add_poll(int fd, int events, void* opaque) {
    auto& fds = of(opaque).fds;
    fds.push_back({fd, to_poll_events(events), 0});
    return static_cast<int>(fds.size() - 1);
  }
  static int get_revents(int index, void* opaque) {
    auto& fds = of(opaque).fds;
    if (index < 0 || static_cast<size_t>(index) >= fds.size()) return 0;
    return to_slirp_events(fds[static_cast<size_t>(index)].revents);
  }

  int64_t now_ms() const { return monotonic_ns() / 1'000'000; }

  void fire_timers() {
    const int64_t now = now_ms();
    // A callback may modify or free timers: collect first.
    std::vector<Timer*> due;
    for (const auto& timer : timers) {
      if (timer->expire_ms >= 0 && timer->expire_ms <= now) due.push_back(timer.get());
    }
    for (Timer* timer : due) {
      timer->expire_ms = -1;
      if (timer->by_id) {
        slirp_handle_timer(slirp, timer->id, timer->callback_opaque);
      } else {
        timer->callback(timer->callback_opaque);
      }
    }
  }

  uint32_t clamp_timeout(uint32_t timeout_ms) const {
    const int64_t now = now_ms();
    for (const auto& timer : timers) {
      if (timer->expire_ms < 0) continue;
      timeout_ms =
          static_cast<uint32_t>(std::min<int64_t>(timeout_ms, std::max<int64_t>(0, timer->expire_ms - now)));
    }
    return timeout_ms;
  }

  // Frames the guest sent, as QEMU's stream netdev frames them; false if
  // the stream is malformed.
  bool deliver_from_guest() {
    size_t offset = 0;
    while (from_guest.size() - offset >= 4) {
      uint32_t size;
      std::memcpy(&size, from_guest.data() + offset, 4);
      size = ntohl(size);
      if (size == 0 || size > kMaxFrame) return false;
      if (from_guest.size() - offset - 4 < size) break;
      slirp_input(slirp, reinterpret_cast<const uint8_t*>(from_guest.data() + offset + 4),
                  static_cast<int>(size));
      offset += 4 + size;
    }
    from_guest.erase(0, offset);
    return true;
  }
};

SlirpStack::SlirpStack(UniqueFd link, bool restricted, const std::vector<Forward>& forwards)
    : link_(std::move(link)) {
  set_nonblocking(link_.get());
  SlirpConfig config{};
  config.version = 4;
  config.restricted = restricted ? 1 : 0;
  config.in_enabled = true;
  config.vnetwork = ipv4(network::link::kNetwork);
  config.vnetmask = ipv4(network::link::kNetmask);
  config.vhost = ipv4(network::link::kGateway);
  config.in6_enabled = false;
  config.vdhcp_start = ipv4(network::link::kGuestAddress);
  config.vnameserver = ipv4(network::link::kNameserver);
  // The host's own services are never the guest's business.
  config.disable_host_loopback = true;
  config.enable_emu = false;
  config.disable_dns = restricted;
  config.disable_dhcp = true;

  static const SlirpCb callbacks = {
      .send_packet = State::send_packet,
      .guest_error = State::guest_error,
      .clock_get_ns = State::clock_get_ns,
      .timer_new = State::timer_new,
      .timer_free = State::timer_free,
      .timer_mod = State::timer_mod,
      .register_poll_fd = State::register_poll_fd,
      .unregister_poll_fd = State::unregister_poll_fd,
      .notify = State::notify,
      .init_completed = nullptr,
      .timer_new_opaque = State::timer_new_opaque,
  };
  state_ = std::make_unique<State>();
  state_->slirp = slirp_new(&config, &callbacks, state_.get());
  if (!state_->slirp) throw Error(ErrorCode::io, "libslirp could not create the guest network");
  for (const auto& forward : forwards) {
    in_addr address = ipv4(forward.guest_address);
    if (slirp_add_unix(state_->slirp, forward.socket_path.c_str(), &address, forward.port) < 0) {
      throw Error(ErrorCode::io, "libslirp refused the forward to " + forward.guest_address);
    }
  }
}

SlirpStack::~SlirpStack() = default;

void SlirpStack::run() {
  State& state = *state_;
  for (;;) {
    state.fds.clear();
    state.fds.push_back(
        {link_.get(), static_cast<short>(POLLIN | (state.to_guest.empty() ? 0 : POLLOUT)), 0});
    uint32_t timeout_ms = 1000;
    slirp_pollfds_fill(state.slirp, &timeout_ms, State::add_poll, &state);
    timeout_ms = state.clamp_timeout(timeout_ms);
    const int ready = ::poll(state.fds.data(), state.fds.size(), static_cast<int>(timeout_ms));
    if (ready < 0 && errno != EINTR) return;
    if (ready > 0 && (state.fds[0].revents & (POLLIN | POLLHUP | POLLERR))) {
      char buffer[65536];
      const ssize_t n = ::read(link_.get(), buffer, sizeof buffer);
      if (n > 0) {
        state.from_guest.append(buffer, static_cast<size_t>(n));
        if (!state.deliver_from_guest()) return;
      } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
        return;  // QEMU is gone
      }
    }
    slirp_pollfds_poll(state.slirp, ready < 0 ? 1 : 0, State::get_revents, &state);
    state.fire_timers();
    // Whatever slirp produced goes out now rather than after the next poll.
    while (!state.to_guest.empty()) {
      const ssize_t n = ::write(link_.get(), state.to_guest.data(), state.to_guest.size());
      if (n > 0) {
        state.to_guest.erase(0, static_cast<size_t>(n));
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) break;
      return;
    }
  }
}

}  // namespace airlock::netstack
