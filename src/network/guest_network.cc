#include "network/guest_network.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

#include "common/error.h"
#include "common/io.h"
#include "network/guest_link.h"
#include "network/upstream.h"

namespace airlock::network {

namespace {

constexpr size_t kMaxDenials = 100;
// The stack's sockets, inside its jail (a tmpfs of its own there).
constexpr const char* kJailedSocketDir = "/run/airlock-netstack";
// The stack's fds, as airlock-netstack expects them.
constexpr int kLinkFd = 3;
constexpr int kChannelFd = 4;
// libslirp and the relays' buffers: 64 connections of 2 x 256 KiB, and slack.
constexpr int kStackMemoryMb = 64;

// A denial is the stack's text: printable ASCII only, so it cannot forge
// lines or escapes in logs and results.
std::string printable(std::string text) {
  for (char& c : text) {
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7e) c = '?';
  }
  return text;
}

}  // namespace

GuestNetwork::GuestNetwork(const NetworkPolicy& policy, ResolverMap resolver, const NetstackLaunch& launch)
    : resolver_(std::move(resolver)) {
  if (policy.mode == NetworkMode::none) throw Error(ErrorCode::internal, "GuestNetwork for a 'none' policy");
  if (launch.program.empty() || launch.program[0] != '/') {
    throw Error(ErrorCode::internal, "the network stack's program needs an absolute path: " + launch.program);
  }
  stop_ = UniqueFd(::eventfd(0, EFD_CLOEXEC));
  if (!stop_) throw_errno("eventfd");

  const bool restricted = policy.mode == NetworkMode::allow;
  setup_.address = link::kGuestAddress;
  setup_.prefix_length = link::kPrefixLength;
  std::vector<std::string> route_arguments;
  if (restricted) {
    for (size_t i = 0; i < policy.allowed.size(); ++i) {
      const std::string address = "10.0.2." + std::to_string(link::kFirstNameHost + static_cast<int>(i));
      setup_.hosts.emplace_back(policy.allowed[i], address);
      for (uint16_t port : {kHttpPort, kHttpsPort}) {
        routes_.push_back({policy.allowed[i], port});
        route_arguments.push_back(policy.allowed[i] + "@" + address + ":" + std::to_string(port));
      }
    }
  } else {
    setup_.gateway = link::kGateway;
    setup_.nameserver = link::kNameserver;
  }

  dir_ = TempDir::create(launch.work_dir, "netstack-");
  vmm::jail::JailPlan plan;
  plan.name = launch.name + "-net";
  plan.work_dir = dir_.path();
  plan.read_only_files = {launch.program};
  plan.vcpus = 1;
  plan.memory_mb = kStackMemoryMb;
  plan.user = vmm::jail::JailUser::netstack;
  plan.host_network = !restricted;
  if (!restricted && ::access("/etc/resolv.conf", R_OK) == 0)
    plan.read_only_files.push_back("/etc/resolv.conf");
  const bool own_root =
      launch.skipped_layers.count("jail_dir") == 0 && launch.skipped_layers.count("namespaces") == 0;
  std::string socket_dir = kJailedSocketDir;
  if (own_root) {
    plan.scratch_dir = socket_dir;
  } else {
    // No root of its own (weak isolation): a directory here, which the stack's user can reach.
    socket_dir = dir_.file("sockets");
    make_directories(socket_dir, 0700);
    if (::geteuid() == 0) {
      if (::chmod(dir_.path().c_str(), 0711) < 0) throw_errno("chmod", dir_.path());
      if (::chown(socket_dir.c_str(), vmm::jail::jail_uid(plan.user), vmm::jail::jail_gid(plan.user)) < 0) {
        throw_errno("chown", socket_dir);
      }
    }
  }
  jail_ = std::make_unique<vmm::jail::Jail>(plan, launch.skipped_layers);

  auto [stack_link, vm_link] = make_socket_pair();
  vm_end_ = std::move(vm_link);
  auto [ours, theirs] = make_netstack_channel();
  channel_ = std::move(ours);
  std::vector<std::string> argv = {launch.program, restricted ? "--restricted" : "--full"};
  if (restricted) {
    argv.insert(argv.end(), {"--socket-dir", socket_dir});
    for (const auto& route : route_arguments) argv.insert(argv.end(), {"--route", route});
  }
  SpawnOptions options;
  options.fds = {{kLinkFd, stack_link.get()}, {kChannelFd, theirs.get()}};
  jail_->configure(options);
  stack_ = ChildProcess::spawn(argv, options);
  thread_ = std::thread([this] { serve(); });
}

GuestNetwork::~GuestNetwork() {
  const uint64_t one = 1;
  [[maybe_unused]] auto written = ::write(stop_.get(), &one, sizeof one);
  stack_.kill(SIGKILL);
  if (thread_.joinable()) thread_.join();
  std::lock_guard lock(channel_mutex_);
  workers_.reap(true);
  // stack_ is reaped, then jail_ removes the cgroup and dir_ the directories.
}

std::vector<std::string> GuestNetwork::denials() {
  {
    // What the stack said before the guest learned of a refusal is in the
    // channel already, perhaps not yet read: read it now.
    std::lock_guard lock(channel_mutex_);
    try {
      while (!stack_ended_) {
        auto message = receive_netstack_message(channel_.get(), /*accept_fd=*/false, /*wait=*/false);
        if (!message) break;
        handle(std::move(*message));
      }
    } catch (const Error& e) {
      record_denial(std::string("the network stack broke its channel: ") + e.what());
      stack_ended_ = true;
    }
  }
  std::lock_guard lock(denials_mutex_);
  return denials_;
}

void GuestNetwork::record_denial(std::string reason) {
  std::lock_guard lock(denials_mutex_);
  if (denials_.size() < kMaxDenials) denials_.push_back(printable(std::move(reason)));
}

void GuestNetwork::serve() {
  for (;;) {
    pollfd fds[2] = {{stop_.get(), POLLIN, 0}, {channel_.get(), POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[0].revents) return;
    std::lock_guard lock(channel_mutex_);
    if (stack_ended_) return;
    try {
      auto message = receive_netstack_message(channel_.get(), /*accept_fd=*/false, /*wait=*/false);
      if (message) {
        handle(std::move(*message));
      } else if (fds[1].revents & (POLLHUP | POLLERR)) {
        note_stack_end();
        return;
      }
    } catch (const Error& e) {
      // A stack that breaks the channel is not believed again: it is killed.
      record_denial(std::string("the network stack broke its channel: ") + e.what());
      stack_ended_ = true;
      stack_.kill(SIGKILL);
      return;
    }
  }
}

void GuestNetwork::note_stack_end() {
  stack_ended_ = true;
  // Not reaped here (the destructor does): only looked at, if it has exited yet.
  pollfd exited{stack_.pidfd(), POLLIN, 0};
  std::string how = "its channel closed";
  if (::poll(&exited, 1, 1000) == 1) {
    siginfo_t info{};
    if (::waitid(P_PIDFD, static_cast<id_t>(stack_.pidfd()), &info, WEXITED | WNOWAIT | WNOHANG) == 0 &&
        info.si_pid != 0) {
      how = info.si_code == CLD_EXITED ? "exited with code " + std::to_string(info.si_status)
                                       : "killed by signal " + std::to_string(info.si_status) + " (" +
                                             ::strsignal(info.si_status) + ")";
    }
  }
  record_denial("the guest's network stack ended (" + how + "): the guest has no network from here on");
}

void GuestNetwork::handle(NetstackMessage message) {
  switch (message.type) {
    case NetstackMessageType::denial: record_denial(std::move(message.text)); return;
    case NetstackMessageType::connect: {
      if (message.route >= routes_.size()) {
        throw Error(ErrorCode::protocol, "netstack channel: route " + std::to_string(message.route) + " of " +
                                             std::to_string(routes_.size()));
      }
      const uint32_t id = message.id;
      const uint32_t route = message.route;
      if (!workers_.start([this, id, route] { connect(id, route); })) {
        const std::string reason =
            "more than " + std::to_string(kMaxConnections) + " connections at once to " + routes_[route].name;
        record_denial(reason);
        NetstackMessage refused;
        refused.type = NetstackMessageType::refused;
        refused.id = id;
        refused.text = reason;
        try {
          send_netstack_message(channel_.get(), refused);
        } catch (const Error&) {
          // The stack is gone; serve() notices.
        }
      }
      return;
    }
    default:
      throw Error(ErrorCode::protocol, "netstack channel: the stack may not send message type " +
                                           std::to_string(static_cast<uint32_t>(message.type)));
  }
}

void GuestNetwork::connect(uint32_t id, uint32_t route) {
  NetstackMessage answer;
  answer.id = id;
  try {
    answer.fd = connect_route(routes_[route], resolver_, stop_.get());
    answer.type = NetstackMessageType::connected;
  } catch (const EgressRefusal& refusal) {
    // Recorded before the stack, and so the guest, can learn of it.
    record_denial(refusal.reason);
    answer.type = NetstackMessageType::refused;
    answer.text = refusal.reason;
  } catch (const std::exception& e) {
    const std::string reason = "connection to " + routes_[route].name + " failed: " + e.what();
    record_denial(reason);
    answer.type = NetstackMessageType::refused;
    answer.text = reason;
  }
  try {
    send_netstack_message(channel_.get(), answer);
  } catch (const Error&) {
    // The stack is gone; serve() notices.
  }
}

}  // namespace airlock::network
