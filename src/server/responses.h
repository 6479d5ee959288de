#pragma once

#include <poll.h>

#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "common/error.h"
#include "engine/guest_session.h"
#include "engine/run_result.h"
#include "server/http_server.h"

namespace airlock::server {

// How every endpoint answers: JSON without throwing on bad UTF-8, errors
// mapped from the engine's typed errors in one table.
std::string dump(const nlohmann::json& document);
// A run result as the API sends it, its output moved, not copied.
std::string result_body(engine::RunResult result);

// The one field `name` of a request body that has only it (`what` names
// the request in errors). Throws Error(invalid_argument) for a body that
// is not an object, has other fields, or lacks it.
nlohmann::json only_field(const std::string& body, const std::string& name, const std::string& what);
void send_error(ResponseWriter& writer, int status, const std::string& code, const std::string& message,
                bool retryable);
void send_error(ResponseWriter& writer, const Error& error);
// An error as the API's Error schema has it (for answers that carry several).
nlohmann::json error_json(const Error& error);

// Cancels a run when its client hangs up, until it goes out of scope.
class HangupWatch {
 public:
  HangupWatch(int client_fd, const engine::CancelToken& cancel)
      : watcher_([this, client_fd, &cancel] {
          pollfd fds[2] = {{client_fd, POLLRDHUP, 0}, {over_.fd(), POLLIN, 0}};
          while (client_fd >= 0 && ::poll(fds, 2, -1) >= 0 && !fds[1].revents) {
            if (fds[0].revents & (POLLRDHUP | POLLHUP | POLLERR)) {
              cancel.cancel();
              return;
            }
          }
        }) {}
  ~HangupWatch() {
    over_.cancel();
    watcher_.join();
  }
  HangupWatch(const HangupWatch&) = delete;
  HangupWatch& operator=(const HangupWatch&) = delete;

 private:
  engine::CancelToken over_;  // declared before the thread that polls it
  std::thread watcher_;
};

}  // namespace airlock::server
