#include "network/guest_network.h"

#include <arpa/inet.h>
#include <libslirp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <system_error>

#include "common/error.h"
#include "common/io.h"
#include "network/egress.h"

namespace airlock::network {

namespace {

// The guest's private network, as slirp's defaults have it.
constexpr const char* kNetwork = "10.0.2.0";
constexpr const char* kNetmask = "255.255.255.0";
constexpr const char* kGateway = "10.0.2.2";
constexpr const char* kNameserver = "10.0.2.3";
constexpr const char* kGuestAddress = "10.0.2.15";
// Allowed name i is reached at 10.0.2.(kFirstNameHost + i).
constexpr int kFirstNameHost = 100;
// Ethernet frames QEMU hands over carry at most 64 KiB (plus headers).
constexpr size_t kMaxFrame = 65536 + 64;
constexpr size_t kMaxQueuedToGuest = 4 << 20;
constexpr size_t kMaxDenials = 100;

in_addr ipv4(const std::string& text) {
  in_addr address{};
  if (::inet_pton(AF_INET, text.c_str(), &address) != 1) {
    throw Error(ErrorCode::internal, "bad IPv4 address " + text);
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

// libslirp calls back into this through the opaque pointer; everything here
// runs on the network's own thread.
struct GuestNetwork::Stack {
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

  ~Stack() {
    if (slirp) slirp_cleanup(slirp);
  }

  static Stack& of(void* opaque) { return *static_cast<Stack*>(opaque); }

  static ssize_t send_packet(const void* frame, size_t length, void* opaque) {
    Stack& stack = of(opaque);
    // A guest that does not drain its queue loses frames; TCP resends them.
    if (stack.to_guest.size() > kMaxQueuedToGuest) return static_cast<ssize_t>(length);
    const uint32_t size = htonl(static_cast<uint32_t>(length));
    stack.to_guest.append(reinterpret_cast<const char*>(&size), 4);
    stack.to_guest.append(static_cast<const char*>(frame), length);
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

  // Frames the guest sent, as QEMU's stream netdev frames them.
  // False if the stream is malformed.
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

GuestNetwork::GuestNetwork(const NetworkPolicy& policy, ResolverMap resolver, const std::string& socket_dir)
    : resolver_(std::move(resolver)) {
  if (policy.mode == NetworkMode::none) throw Error(ErrorCode::internal, "GuestNetwork for a 'none' policy");
  auto [host_end, vm_end] = make_socket_pair();
  host_end_ = std::move(host_end);
  vm_end_ = std::move(vm_end);
  set_nonblocking(host_end_.get());
  stop_ = UniqueFd(::eventfd(0, EFD_CLOEXEC));
  if (!stop_) throw_errno("eventfd");

  setup_.address = kGuestAddress;
  setup_.prefix_length = 24;
  const bool restricted = policy.mode == NetworkMode::allow;
  if (restricted) {
    for (size_t i = 0; i < policy.allowed.size(); ++i) {
      const std::string address = "10.0.2." + std::to_string(kFirstNameHost + static_cast<int>(i));
      setup_.hosts.emplace_back(policy.allowed[i], address);
      for (uint16_t port : {kHttpPort, kHttpsPort}) {
        const std::string path = socket_dir + "/net-" + std::to_string(i) + "-" + std::to_string(port);
        sockaddr_un socket_address{};
        socket_address.sun_family = AF_UNIX;
        if (path.size() >= sizeof socket_address.sun_path) {
          throw Error(ErrorCode::invalid_argument, "network socket path too long: " + path);
        }
        std::memcpy(socket_address.sun_path, path.c_str(), path.size() + 1);
        UniqueFd listener(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
        if (!listener) throw_errno("socket");
        if (::bind(listener.get(), reinterpret_cast<sockaddr*>(&socket_address), sizeof socket_address) < 0) {
          throw_errno("bind", path);
        }
        socket_paths_.push_back(path);
        if (::listen(listener.get(), 128) < 0) throw_errno("listen", path);
        listeners_.push_back(std::move(listener));
        routes_.push_back({address, EgressRoute{policy.allowed[i], port}});
      }
    }
  } else {
    setup_.gateway = kGateway;
    setup_.nameserver = kNameserver;
  }

  SlirpConfig config{};
  config.version = 4;
  config.restricted = restricted ? 1 : 0;
  config.in_enabled = true;
  config.vnetwork = ipv4(kNetwork);
  config.vnetmask = ipv4(kNetmask);
  config.vhost = ipv4(kGateway);
  config.in6_enabled = false;
  config.vdhcp_start = ipv4(kGuestAddress);
  config.vnameserver = ipv4(kNameserver);
  // The host's own services are never the guest's business.
  config.disable_host_loopback = true;
  config.enable_emu = false;
  config.disable_dns = restricted;
  config.disable_dhcp = true;

  static const SlirpCb callbacks = {
      .send_packet = Stack::send_packet,
      .guest_error = Stack::guest_error,
      .clock_get_ns = Stack::clock_get_ns,
      .timer_new = Stack::timer_new,
      .timer_free = Stack::timer_free,
      .timer_mod = Stack::timer_mod,
      .register_poll_fd = Stack::register_poll_fd,
      .unregister_poll_fd = Stack::unregister_poll_fd,
      .notify = Stack::notify,
      .init_completed = nullptr,
      .timer_new_opaque = Stack::timer_new_opaque,
  };
  stack_ = std::make_unique<Stack>();
  stack_->slirp = slirp_new(&config, &callbacks, stack_.get());
  if (!stack_->slirp) throw Error(ErrorCode::io, "libslirp could not create the guest network");
  for (size_t i = 0; i < routes_.size(); ++i) {
    in_addr address = ipv4(routes_[i].first);
    if (slirp_add_unix(stack_->slirp, socket_paths_[i].c_str(), &address, routes_[i].second.port) < 0) {
      throw Error(ErrorCode::io, "libslirp refused the forward for " + routes_[i].second.name);
    }
  }
  thread_ = std::thread([this] { run(); });
  // Accepting apart from the stack: slirp connects to these sockets with a
  // blocking connect(), which must never wait on its own thread.
  if (!listeners_.empty()) acceptor_ = std::thread([this] { accept_loop(); });
}

GuestNetwork::~GuestNetwork() {
  const uint64_t one = 1;
  [[maybe_unused]] auto written = ::write(stop_.get(), &one, sizeof one);
  if (acceptor_.joinable()) acceptor_.join();
  if (thread_.joinable()) thread_.join();
  stack_.reset();
  for (const auto& path : socket_paths_) ::unlink(path.c_str());
}

std::vector<std::string> GuestNetwork::denials() const {
  std::lock_guard lock(denials_mutex_);
  return denials_;
}

void GuestNetwork::record_denial(const std::string& reason) {
  std::lock_guard lock(denials_mutex_);
  if (denials_.size() < kMaxDenials) denials_.push_back(reason);
}

void GuestNetwork::run() {
  Stack& stack = *stack_;
  bool link_up = true;
  for (;;) {
    stack.fds.clear();
    stack.fds.push_back({stop_.get(), POLLIN, 0});
    stack.fds.push_back({link_up ? host_end_.get() : -1,
                         static_cast<short>(POLLIN | (stack.to_guest.empty() ? 0 : POLLOUT)), 0});
    uint32_t timeout_ms = 1000;
    slirp_pollfds_fill(stack.slirp, &timeout_ms, Stack::add_poll, &stack);
    timeout_ms = stack.clamp_timeout(timeout_ms);
    const int ready = ::poll(stack.fds.data(), stack.fds.size(), static_cast<int>(timeout_ms));
    if (ready < 0 && errno != EINTR) break;
    if (ready > 0 && stack.fds[0].revents) break;
    if (ready > 0 && (stack.fds[1].revents & (POLLIN | POLLHUP | POLLERR))) {
      char buffer[65536];
      const ssize_t n = ::read(host_end_.get(), buffer, sizeof buffer);
      if (n > 0) {
        stack.from_guest.append(buffer, static_cast<size_t>(n));
        if (!stack.deliver_from_guest()) link_up = false;
      } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
        link_up = false;  // QEMU is gone; the VM's owner tears this down
      }
    }
    slirp_pollfds_poll(stack.slirp, ready < 0 ? 1 : 0, Stack::get_revents, &stack);
    stack.fire_timers();
    // Whatever slirp produced goes out now rather than after the next poll.
    while (link_up && !stack.to_guest.empty()) {
      const ssize_t n = ::write(host_end_.get(), stack.to_guest.data(), stack.to_guest.size());
      if (n > 0) {
        stack.to_guest.erase(0, static_cast<size_t>(n));
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) break;
      link_up = false;
    }
    if (!link_up) stack.to_guest.clear();
  }
}

void GuestNetwork::accept_loop() {
  struct Connection {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };
  std::vector<Connection> connections;
  auto reap = [&connections](bool all) {
    for (auto it = connections.begin(); it != connections.end();) {
      if (all || it->done->load()) {
        it->thread.join();
        it = connections.erase(it);
      } else {
        ++it;
      }
    }
  };
  std::vector<pollfd> fds;
  int backoff_ms = -1;
  for (;;) {
    fds.assign(1, {stop_.get(), POLLIN, 0});
    for (const auto& listener : listeners_) fds.push_back({listener.get(), POLLIN, 0});
    const int ready = ::poll(fds.data(), fds.size(), backoff_ms);
    backoff_ms = -1;
    if (ready < 0 && errno != EINTR) break;
    if (ready > 0 && fds[0].revents) break;
    for (size_t i = 0; ready > 0 && i < listeners_.size(); ++i) {
      if (!(fds[1 + i].revents & POLLIN)) continue;
      UniqueFd accepted(::accept4(listeners_[i].get(), nullptr, nullptr, SOCK_CLOEXEC));
      if (!accepted) {
        // Out of descriptors: wait a little instead of waking at once, forever.
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) backoff_ms = 100;
        continue;
      }
      reap(false);
      if (connections.size() >= kMaxConnections) {
        record_denial("more than " + std::to_string(kMaxConnections) + " connections at once");
        continue;
      }
      auto done = std::make_shared<std::atomic<bool>>(false);
      const EgressRoute route = routes_[i].second;
      const int fd = accepted.get();
      try {
        connections.push_back({std::thread([this, done, route, fd] {
                                 serve_egress(UniqueFd(fd), route, resolver_, stop_.get(),
                                              [this](const std::string& reason) { record_denial(reason); });
                                 done->store(true);
                               }),
                               done});
        accepted.release();  // the thread owns it now
      } catch (const std::system_error&) {
        record_denial("no thread for another connection to " + route.name);
      }
    }
    reap(false);
  }
  reap(true);
}

}  // namespace airlock::network
