// airlock exec: run a command in a sandbox, stream its output, exit with its
// code (125 for an Airlock error, 126/127 when the command cannot be run or
// is not found, as docker does); or, with -d, start it in the background and
// print its exec id.
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <termios.h>
#include <unistd.h>

#include <iostream>
#include <thread>

#include "cli/daemon_client.h"
#include "cli/sinks.h"
#include "cli/verbs.h"
#include "engine/run_request.h"
#include "engine/run_result.h"
#include "engine/sandbox_json.h"

namespace airlock::cli {

namespace {

struct ExecOptions {
  std::string id;
  engine::ExecRequest request;
  std::vector<std::string> env;
  bool stdin_wanted = false;
  bool tty = false;
  bool detach = false;
  bool json = false;
  std::string socket;
  bool timeout_given = false;
};

// The local terminal in raw mode while it lives (keys go to the sandbox's
// terminal as they are typed), as it was after.
class RawTerminal {
 public:
  RawTerminal() {
    if (!::isatty(0) || ::tcgetattr(0, &saved_) < 0) return;
    termios raw = saved_;
    ::cfmakeraw(&raw);
    active_ = ::tcsetattr(0, TCSANOW, &raw) == 0;
  }
  ~RawTerminal() {
    if (active_) ::tcsetattr(0, TCSANOW, &saved_);
  }
  RawTerminal(const RawTerminal&) = delete;
  RawTerminal& operator=(const RawTerminal&) = delete;

 private:
  termios saved_{};
  bool active_ = false;
};

// exec -t: the command in a terminal of the sandbox (the size of ours),
// started in the background with its stdin open; with -i our keys go to it
// as typed, a resize of ours follows, and its output is followed to its end.
int exec_in_terminal(ExecOptions& options) {
  const std::string socket = daemon_socket_path(options.socket);
  winsize size{};
  if (::ioctl(1, TIOCGWINSZ, &size) == 0 && size.ws_row > 0 && size.ws_col > 0) {
    options.request.rows = size.ws_row;
    options.request.cols = size.ws_col;
  }
  options.request.tty = true;
  options.request.background = true;
  options.request.stdin_open = options.stdin_wanted;
  nlohmann::json body = engine::to_json(options.request);
  if (!options.timeout_given) body.erase("timeout_s");
  const std::string execs = "/v1/sandboxes/" + options.id + "/execs";
  const std::string exec_id = call_daemon(socket, "POST", execs, body.dump()).at("id").get<std::string>();
  const std::string path = execs + "/" + exec_id;

  RawTerminal raw;
  engine::CancelToken done;
  // SIGWINCH is taken by a thread of its own, as a resize of the sandbox's terminal.
  sigset_t winch;
  sigemptyset(&winch);
  sigaddset(&winch, SIGWINCH);
  ::pthread_sigmask(SIG_BLOCK, &winch, nullptr);
  UniqueFd resized(::signalfd(-1, &winch, SFD_CLOEXEC | SFD_NONBLOCK));
  std::thread relay([&] {
    char buffer[4096];
    bool reading = options.stdin_wanted;
    for (;;) {
      pollfd fds[3] = {{reading ? 0 : -1, POLLIN, 0}, {resized.get(), POLLIN, 0}, {done.fd(), POLLIN, 0}};
      if (::poll(fds, 3, -1) < 0 && errno != EINTR) return;
      if (fds[2].revents) return;
      try {
        if (fds[1].revents) {
          signalfd_siginfo info;
          while (::read(resized.get(), &info, sizeof info) > 0) {
          }
          winsize now{};
          if (::ioctl(1, TIOCGWINSZ, &now) == 0 && now.ws_row > 0) {
            call_daemon(socket, "POST", path + "/resize",
                        nlohmann::json{{"rows", now.ws_row}, {"cols", now.ws_col}}.dump());
          }
        }
        if (fds[0].revents) {
          const ssize_t n = ::read(0, buffer, sizeof buffer);
          if (n > 0) {
            exchange_with_daemon(socket, "POST", path + "/stdin",
                                 std::string(buffer, static_cast<size_t>(n)));
          } else if (n == 0 || errno != EINTR) {
            exchange_with_daemon(socket, "POST", path + "/stdin?close=1", "");
            reading = false;
          }
        }
      } catch (const Error&) {
        return;  // the exec ended meanwhile: the follower below says how
      }
    }
  });
  struct Join {
    std::thread& thread;
    engine::CancelToken& done;
    ~Join() {
      done.cancel();
      thread.join();
    }
  } join{relay, done};
  TerminalSink terminal;
  engine::CancelToken never;
  std::optional<engine::RunResult> result =
      follow_via_daemon(socket, path + "/logs?follow=1", terminal, never);
  if (!result) throw Error(ErrorCode::unavailable, "the terminal's stream ended before its exec");
  if (!result->error.empty() && result->status != engine::RunStatus::ok) {
    std::cerr << "airlock: " << result->error << "\n";
  }
  return engine::exit_code_for(*result);
}

int exec(ExecOptions& options) {
  for (const auto& assignment : options.env)
    options.request.env.push_back(engine::parse_env_assignment(assignment));
  if (options.tty && !options.detach) return exec_in_terminal(options);
  if (options.stdin_wanted) {
    options.request.stdin_data = read_file("/dev/stdin", 64 << 20);
    if (!engine::is_valid_utf8(options.request.stdin_data)) {
      throw Error(ErrorCode::invalid_argument,
                  "stdin for an exec must be UTF-8 text (the API carries it as JSON)");
    }
  }
  const std::string socket = daemon_socket_path(options.socket);
  if (options.detach) {
    options.request.background = true;
    nlohmann::json body = engine::to_json(options.request);
    // Unless told, a background exec lasts as long as its sandbox.
    if (!options.timeout_given) body.erase("timeout_s");
    const nlohmann::json started =
        call_daemon(socket, "POST", "/v1/sandboxes/" + options.id + "/execs", body.dump());
    std::cout << (options.json ? started.dump() : started.at("id").get<std::string>()) << "\n";
    return 0;
  }
  TerminalSink terminal;
  CollectingSink collected;
  engine::CancelToken cancel;
  auto result = stream_via_daemon(
      socket, "/v1/sandboxes/" + options.id + "/execs", engine::to_json(options.request).dump(),
      options.json ? static_cast<engine::OutputSink&>(collected) : terminal, cancel);
  if (!result) {
    call_daemon(socket, "GET", "/v1/health");  // throws, saying how to start airlockd
    throw Error(ErrorCode::unavailable, "airlockd did not take the exec");
  }
  if (options.json) {
    std::cout << engine::to_json(*result).dump() << "\n";
  } else if (!result->error.empty() && result->status != engine::RunStatus::ok) {
    std::cerr << "airlock: " << result->error << "\n";
  }
  return engine::exit_code_for(*result);
}

}  // namespace

void add_exec(CLI::App& app, Action& action) {
  auto options = std::make_shared<ExecOptions>();
  CLI::App* verb =
      app.add_subcommand("exec", "Run a command in a sandbox: airlock exec ID -- COMMAND [ARG...]");
  verb->add_option("id", options->id, "Sandbox id")->required();
  verb->add_option("command", options->request.argv, "The command and its arguments (after --)")->required();
  verb->add_option("-e,--env", options->env, "NAME=value for the command (repeatable)")
      ->allow_extra_args(false);
  verb->add_option("-w,--cwd", options->request.cwd, "Working directory in the guest")->capture_default_str();
  CLI::Option* timeout =
      verb->add_option("--timeout", options->request.timeout_s,
                       "The command's time limit in seconds (30; none for --detach or --tty unless given)");
  verb->add_flag("-d,--detach", options->detach,
                 "Run it in the background and print its exec id (see airlock logs, airlock kill)");
  verb->add_flag("-i,--interactive", options->stdin_wanted,
                 "Pass this process's stdin to the command (read whole; with -t, as typed)");
  verb->add_flag("-t,--tty", options->tty,
                 "Run it in a terminal of the sandbox, the size of this one (-it: an interactive shell)");
  verb->add_flag("--json", options->json, "Print one JSON result object instead of streaming");
  add_socket_option(*verb, options->socket);
  verb->callback([&action, options, timeout] {
    options->timeout_given = timeout->count() > 0;
    action = [options] { return exec(*options); };
  });
}

}  // namespace airlock::cli
