#include "netstack/daemon_link.h"

#include <unistd.h>

#include <chrono>

#include "common/error.h"
#include "network/egress.h"

namespace airlock::netstack {

namespace {

// airlockd connects within 10 s or refuses; this only guards against a daemon that stopped answering.
constexpr auto kAnswerTimeout = std::chrono::seconds(60);

}  // namespace

DaemonLink::DaemonLink(UniqueFd channel) : channel_(std::move(channel)) {
  reader_ = std::thread([this] { read_loop(); });
}

DaemonLink::~DaemonLink() {
  // The reader only ends with the process; nothing destroys a DaemonLink before that.
  reader_.detach();
}

UniqueFd DaemonLink::connect(uint32_t route) {
  std::unique_lock lock(mutex_);
  const uint32_t id = next_id_++;
  waiting_.emplace(id, std::nullopt);
  network::NetstackMessage request;
  request.type = network::NetstackMessageType::connect;
  request.id = id;
  request.route = route;
  try {
    send_netstack_message(channel_.get(), request);
  } catch (const Error& e) {
    waiting_.erase(id);
    throw network::EgressRefusal{std::string("airlockd is gone: ") + e.what()};
  }
  const bool answered = answered_.wait_for(lock, kAnswerTimeout, [&] { return waiting_.at(id).has_value(); });
  auto node = waiting_.extract(id);
  if (!answered) throw network::EgressRefusal{"airlockd did not answer within 60 s"};
  network::NetstackMessage& answer = *node.mapped();
  if (answer.type == network::NetstackMessageType::connected && answer.fd) return std::move(answer.fd);
  throw network::EgressRefusal{answer.text.empty() ? std::string("refused by airlockd") : answer.text};
}

void DaemonLink::report_denial(const std::string& reason) {
  network::NetstackMessage denial;
  denial.type = network::NetstackMessageType::denial;
  denial.text = reason;
  try {
    send_netstack_message(channel_.get(), denial);
  } catch (const Error&) {
    // airlockd is gone; the reader ends the process.
  }
}

void DaemonLink::read_loop() {
  for (;;) {
    std::optional<network::NetstackMessage> message;
    try {
      message = network::receive_netstack_message(channel_.get(), /*accept_fd=*/true);
    } catch (const Error&) {
      break;  // airlockd never sends malformed messages: treat it as gone
    }
    if (!message) break;
    if (message->type != network::NetstackMessageType::connected &&
        message->type != network::NetstackMessageType::refused) {
      break;
    }
    std::lock_guard lock(mutex_);
    auto waiter = waiting_.find(message->id);
    if (waiter == waiting_.end() || waiter->second) continue;  // a late answer: its socket closes here
    waiter->second = std::move(message);
    answered_.notify_all();
  }
  // Everything this process serves is airlockd's; without it, nothing is left to do.
  ::_exit(0);
}

}  // namespace airlock::netstack
