#pragma once

#include <chrono>
#include <nlohmann/json.hpp>
#include <string>

#include "common/unique_fd.h"

namespace airlock::vmm {

// A QMP (QEMU Machine Protocol) client over an already-connected socket.
// Commands are synchronous with a deadline; asynchronous events that arrive
// in between are kept for whoever asks (events()).
class QmpClient {
 public:
  // Reads the greeting and negotiates capabilities.
  QmpClient(UniqueFd socket, std::chrono::milliseconds timeout);

  // Returns the "return" member; throws Error(vm) with QEMU's description
  // when the command fails, or when QEMU does not answer in time.
  nlohmann::json execute(const std::string& command,
                         const nlohmann::json& arguments = nlohmann::json::object());
  // Hands QEMU an open file under `name` (QMP getfd, fd passed with SCM_RIGHTS).
  void pass_fd(const std::string& name, int fd);
  const std::vector<nlohmann::json>& events() const { return events_; }

 private:
  nlohmann::json read_message();
  void send_line(const std::string& line, int fd_to_pass);
  nlohmann::json read_reply(const std::string& command);

  UniqueFd socket_;
  std::chrono::milliseconds timeout_;
  std::string buffer_;
  std::vector<nlohmann::json> events_;
};

}  // namespace airlock::vmm
