#include "vmm/qmp_client.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <cstring>

#include "common/clock.h"
#include "common/error.h"
#include "common/io.h"

namespace airlock::vmm {

using nlohmann::json;

namespace {
constexpr size_t kMaxQmpMessage = 1 << 20;
}

QmpClient::QmpClient(UniqueFd socket, std::chrono::milliseconds timeout)
    : socket_(std::move(socket)), timeout_(timeout) {
  set_nonblocking(socket_.get());
  json greeting = read_message();
  if (!greeting.contains("QMP")) throw Error(ErrorCode::vm, "QMP: unexpected greeting " + greeting.dump());
  execute("qmp_capabilities");
}

json QmpClient::read_message() {
  const auto deadline = SteadyClock::now() + timeout_;
  for (;;) {
    size_t newline = buffer_.find('\n');
    if (newline != std::string::npos) {
      std::string line = buffer_.substr(0, newline);
      buffer_.erase(0, newline + 1);
      json message = json::parse(line, nullptr, false);
      if (message.is_discarded() || !message.is_object()) {
        throw Error(ErrorCode::vm, "QMP: malformed message from QEMU");
      }
      return message;
    }
    if (buffer_.size() > kMaxQmpMessage) throw Error(ErrorCode::vm, "QMP: message too large");
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyClock::now());
    if (left.count() <= 0) {
      throw Error(ErrorCode::vm,
                  "QMP: QEMU did not answer within " + std::to_string(timeout_.count()) + " ms");
    }
    pollfd p{socket_.get(), POLLIN, 0};
    int r = ::poll(&p, 1, static_cast<int>(left.count()));
    if (r < 0 && errno != EINTR) throw_errno("poll", "QMP socket");
    if (r <= 0) continue;
    char chunk[4096];
    auto n = read_some(socket_.get(), chunk, sizeof chunk);
    if (!n) continue;
    if (*n == 0) throw Error(ErrorCode::vm, "QMP: QEMU closed the monitor connection");
    buffer_.append(chunk, *n);
  }
}

void QmpClient::send_line(const std::string& line, int fd_to_pass) {
  size_t sent = 0;
  bool fd_sent = fd_to_pass < 0;
  while (sent < line.size()) {
    iovec io{const_cast<char*>(line.data() + sent), line.size() - sent};
    msghdr message{};
    message.msg_iov = &io;
    message.msg_iovlen = 1;
    FdControl control;
    // The fd must ride on the bytes of the command that names it.
    if (!fd_sent) attach_fd(message, control, fd_to_pass);
    ssize_t n = ::sendmsg(socket_.get(), &message, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        pollfd p{socket_.get(), POLLOUT, 0};
        ::poll(&p, 1, static_cast<int>(timeout_.count()));
        continue;
      }
      throw_errno("sendmsg", "QMP socket");
    }
    fd_sent = true;
    sent += static_cast<size_t>(n);
  }
}

json QmpClient::read_reply(const std::string& command) {
  for (;;) {
    json message = read_message();
    if (message.contains("event")) {
      events_.push_back(std::move(message));
      continue;
    }
    if (message.contains("error")) {
      std::string description = message["error"].value("desc", message["error"].dump());
      throw Error(ErrorCode::vm, "QMP " + command + ": " + description);
    }
    if (message.contains("return")) return message["return"];
    throw Error(ErrorCode::vm, "QMP " + command + ": unexpected reply " + message.dump());
  }
}

json QmpClient::execute(const std::string& command, const json& arguments) {
  json request = {{"execute", command}};
  if (!arguments.empty()) request["arguments"] = arguments;
  send_line(request.dump() + "\n", -1);
  return read_reply(command);
}

void QmpClient::pass_fd(const std::string& name, int fd) {
  json request = {{"execute", "getfd"}, {"arguments", {{"fdname", name}}}};
  send_line(request.dump() + "\n", fd);
  read_reply("getfd");
}

}  // namespace airlock::vmm
