// airlock: the command-line front end. `airlock run` runs code in a fresh
// microVM, streams its output and exits with the program's exit code.

#include <poll.h>
#include <signal.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>

#include "cli/daemon_client.h"
#include "cli/sinks.h"
#include "cli/verbs.h"
#include "common/error.h"
#include "common/io.h"
#include "common/unique_fd.h"
#include "engine/engine.h"
#include "engine/languages.h"
#include "engine/paths.h"

namespace {

using airlock::Error;
using airlock::ErrorCode;
namespace engine = airlock::engine;

using airlock::cli::CollectingSink;
using airlock::cli::kAirlockErrorExit;
using airlock::cli::TerminalSink;

const engine::CancelToken* g_cancel = nullptr;
volatile sig_atomic_t g_cancel_signal = 0;

void on_terminating_signal(int signal_number) {
  g_cancel_signal = signal_number;
  if (g_cancel) g_cancel->cancel();
}

void install_signal_handlers(const engine::CancelToken& token) {
  g_cancel = &token;
  struct sigaction action {};
  action.sa_handler = on_terminating_signal;
  sigemptyset(&action.sa_mask);
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) ::sigaction(sig, &action, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
}

struct RunOptions {
  std::string language;
  std::string image;
  std::string code;
  std::string file;
  std::vector<std::string> env;
  int timeout_s = engine::Limits::kDefaultTimeoutS;
  int memory_mb = engine::Limits::kDefaultMemoryMb;
  int cpus = 1;
  int max_processes = engine::Limits::kDefaultProcesses;
  int max_open_files = engine::Limits::kDefaultOpenFiles;
  int disk_mb = engine::Limits::kDefaultDiskMb;
  std::string network = "none";
  uint64_t stdout_limit = engine::Limits::kDefaultStdoutLimit;
  uint64_t stderr_limit = engine::Limits::kDefaultStderrLimit;
  bool json = false;
  std::string accel = "auto";
  std::string kernel;
  std::string images;
  bool no_snapshot = false;
  bool fresh_interpreter = false;
  bool no_daemon = false;
  bool allow_weak_isolation = false;
  std::vector<std::string> test_resolve;
  std::vector<std::string> mounts;
  std::string socket;
};

std::string daemon_socket(const RunOptions& options) {
  return airlock::cli::daemon_socket_path(options.socket);
}

// True when all of stdin can be read now without waiting on a writer: a
// regular file, /dev/null, or a pipe whose writer has already finished
// (POLLHUP: everything it wrote sits in the pipe).
bool stdin_is_bounded_now() {
  struct stat info {};
  if (::fstat(0, &info) < 0) return false;
  if (S_ISREG(info.st_mode)) return true;
  if (S_ISCHR(info.st_mode)) {
    struct stat null_device {};
    return ::stat("/dev/null", &null_device) == 0 && null_device.st_rdev == info.st_rdev;
  }
  if (S_ISFIFO(info.st_mode)) {
    pollfd p{0, POLLIN, 0};
    return ::poll(&p, 1, 0) == 1 && (p.revents & POLLHUP);
  }
  return false;
}

bool daemon_answers(const std::string& socket_path) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof address.sun_path) return false;
  std::copy(socket_path.begin(), socket_path.end(), address.sun_path);
  airlock::UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  return fd && ::connect(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
}

int run_command(const RunOptions& options) {
  engine::RunRequest request;
  if (options.language.empty() && options.image.empty()) {
    throw Error(ErrorCode::invalid_argument, "give a language (--lang) or an image (--image)");
  }
  request.language = options.language;
  request.image = options.image;
  if (!options.file.empty()) {
    if (!options.code.empty()) {
      throw Error(ErrorCode::invalid_argument,
                  "give the code either as an argument or with --file, not both");
    }
    request.code =
        airlock::read_file(options.file == "-" ? "/dev/stdin" : options.file, engine::Limits::kMaxCodeBytes);
  } else {
    if (options.code.empty())
      throw Error(ErrorCode::invalid_argument, "no code given (an argument or --file)");
    request.code = options.code;
  }
  for (const auto& assignment : options.env) request.env.push_back(engine::parse_env_assignment(assignment));
  request.timeout_s = options.timeout_s;
  request.memory_mb = options.memory_mb;
  request.cpus = options.cpus;
  request.max_processes = options.max_processes;
  request.max_open_files = options.max_open_files;
  request.disk_mb = options.disk_mb;
  request.network = options.network;
  for (const auto& mount : options.mounts) request.mounts.push_back(engine::parse_mount(mount));
  request.stdout_limit = options.stdout_limit;
  request.stderr_limit = options.stderr_limit;
  request.kernel = options.kernel;
  request.accel = airlock::vmm::parse_accel_choice(options.accel);
  request.use_snapshot = !options.no_snapshot;
  request.fresh_interpreter = options.fresh_interpreter;
  // A terminal is not input: a program waiting on it would only hang.
  if (options.file != "-" && !::isatty(0)) request.stdin_source.fd = 0;

  engine::CancelToken cancel;
  install_signal_handlers(cancel);
  TerminalSink terminal;
  CollectingSink collected;
  std::optional<engine::RunResult> outcome;
  // The daemon serves the default engine settings; other knobs run in-process.
  // The API takes stdin whole, so only a bounded one goes there. A pipe
  // still being written may never end (`yes | airlock run ...`): the
  // in-process engine streams it instead, as the program reads it.
  const bool stdin_is_bounded = request.stdin_source.fd < 0 || stdin_is_bounded_now();
  const bool daemon_capable = !options.no_daemon && options.kernel.empty() && options.accel == "auto" &&
                              !options.no_snapshot && options.images.empty() &&
                              options.test_resolve.empty() && stdin_is_bounded;
  if (daemon_capable) {
    engine::validate(request);
    const std::string socket_path = daemon_socket(options);
    if (daemon_answers(socket_path)) {
      // The API carries stdin as a JSON string: read it now (UTF-8 only; other bytes run in-process).
      std::string input;
      if (request.stdin_source.fd >= 0) {
        input = airlock::read_file("/dev/stdin", 64 << 20);
      }
      if (engine::is_valid_utf8(input)) {
        engine::RunRequest remote = request;
        remote.stdin_source = engine::StdinSource{-1, input};
        spdlog::debug("running through airlockd at {}", socket_path);
        outcome = airlock::cli::run_via_daemon(
            socket_path, remote, options.json ? static_cast<engine::OutputSink&>(collected) : terminal,
            cancel);
        if (!outcome) request.stdin_source = engine::StdinSource{-1, input};
      } else {
        request.stdin_source = engine::StdinSource{-1, input};
      }
    }
  }
  if (!outcome) {
    engine::EngineOptions engine_options;
    engine_options.manifest_path = options.images;
    engine_options.notice = [](const std::string& text) { spdlog::info("{}", text); };
    engine_options.allow_weak_isolation = options.allow_weak_isolation;
    for (const auto& entry : options.test_resolve) {
      auto parsed = airlock::network::parse_resolver_entry(entry);
      engine_options.test_resolver[parsed.name] = parsed;
    }
    engine::Engine sandbox_engine(engine_options);
    outcome = sandbox_engine.run(request, options.json ? nullptr : &terminal, &cancel);
  }
  engine::RunResult& result = *outcome;

  if (options.json) {
    std::string text = engine::to_json(result).dump() + "\n";
    airlock::write_all(1, text);
  } else {
    for (const auto& reason : result.network_denied) spdlog::warn("network filter refused: {}", reason);
  }
  if (!options.json && result.status != engine::RunStatus::ok && result.status != engine::RunStatus::error) {
    spdlog::error("{}", result.error.empty() ? std::string(engine::to_string(result.status)) : result.error);
  }
  // Cancelled by a signal to us: exit as a shell expects of that signal (130 for Ctrl-C).
  if (result.status == engine::RunStatus::killed && g_cancel_signal != 0) return 128 + g_cancel_signal;
  return engine::exit_code_for(result);
}

// airlock repo: a git repository cloned into a fresh sandbox whose network
// reaches only the repository's host, then a command run in its checkout.
// Under bash (every image has it) on the image the language or --image
// names; the URL, ref and command reach the script as environment, never
// as text spliced into it.
constexpr const char* kRepoScript = R"SH(set -u
__url=$AIRLOCK_REPO_URL __ref=$AIRLOCK_REPO_REF __command=$AIRLOCK_REPO_COMMAND __shown=$AIRLOCK_REPO_SHOWN
unset AIRLOCK_REPO_URL AIRLOCK_REPO_REF AIRLOCK_REPO_COMMAND AIRLOCK_REPO_SHOWN
export GIT_TERMINAL_PROMPT=0
__log=$(mktemp)
__clone() {
  if [[ -z $__ref ]]; then
    git clone --quiet --depth 1 -- "$__url" /home/sandbox/repo
  elif git clone --quiet --depth 1 --branch "$__ref" -- "$__url" /home/sandbox/repo 2>/dev/null; then
    :
  elif [[ $__ref =~ ^[0-9a-f]{7,40}$ ]]; then
    # Not a branch or tag: a commit, for which the whole history comes.
    rm -rf /home/sandbox/repo
    git clone --quiet --no-checkout -- "$__url" /home/sandbox/repo && git -C /home/sandbox/repo checkout --quiet --detach "$__ref"
  else
    git clone --quiet --depth 1 --branch "$__ref" -- "$__url" /home/sandbox/repo
  fi
}
if ! __clone 2>"$__log"; then
  echo "airlock: git clone of $__shown${__ref:+ at $__ref} failed:" >&2
  cat "$__log" >&2
  exit 128
fi
rm -f "$__log"
echo "airlock: cloned $__shown at $(git -C /home/sandbox/repo rev-parse -q --verify HEAD || echo '(an empty repository)')" >&2
cd /home/sandbox/repo && exec bash -c "$__command"
)SH";

struct RepoOptions {
  std::string url;
  std::string ref;
  std::string command;
};

// The host a repository URL names; only http(s): the network filter passes
// HTTP and TLS to allowed names and nothing else.
std::string repository_host(const std::string& url) {
  std::string rest;
  for (const char* scheme : {"https://", "http://"}) {
    if (url.rfind(scheme, 0) == 0) rest = url.substr(std::string(scheme).size());
  }
  if (rest.empty()) {
    throw Error(ErrorCode::invalid_argument,
                "repository URL '" + url +
                    "' is not http(s)://...: a sandbox's network carries HTTP and "
                    "HTTPS only (no ssh or git://)");
  }
  std::string authority = rest.substr(0, rest.find('/'));
  authority = authority.substr(authority.rfind('@') + 1);  // user:token@ is git's business
  std::string host =
      !authority.empty() && authority.front() == '['
          ? authority.substr(1, authority.find(']') == std::string::npos ? 0 : authority.find(']') - 1)
          : authority.substr(0, authority.find(':'));
  if (host.empty()) throw Error(ErrorCode::invalid_argument, "repository URL '" + url + "' names no host");
  return host;
}

// The URL as messages show it: user:token@ left out.
std::string without_credentials(const std::string& url) {
  const size_t scheme_end = url.find("://");
  const size_t authority_end = url.find('/', scheme_end + 3);
  const size_t at = url.rfind('@', authority_end);
  if (scheme_end == std::string::npos || at == std::string::npos || at < scheme_end) return url;
  return url.substr(0, scheme_end + 3) + url.substr(at + 1);
}

int repo_command(RunOptions options, const RepoOptions& repo) {
  const std::string host = repository_host(repo.url);
  if (repo.command.empty()) throw Error(ErrorCode::invalid_argument, "no command given (--command)");
  if (options.image.empty()) {
    options.image = engine::find_language(options.language.empty() ? "shell" : options.language).name;
  }
  options.language = "shell";
  options.code = kRepoScript;
  options.network = "allow:" + host;
  options.env.push_back("AIRLOCK_REPO_URL=" + repo.url);
  options.env.push_back("AIRLOCK_REPO_REF=" + repo.ref);
  options.env.push_back("AIRLOCK_REPO_COMMAND=" + repo.command);
  options.env.push_back("AIRLOCK_REPO_SHOWN=" + without_credentials(repo.url));
  return run_command(options);
}

}  // namespace

int main(int argc, char** argv) {
  auto logger = spdlog::stderr_color_mt("airlock");
  logger->set_pattern("airlock: %^%v%$");
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::info);

  CLI::App app{"Airlock: run untrusted code in throwaway microVMs"};
  // Not "required": CLI11 would then answer an unknown command with "a
  // subcommand is required" instead of naming the word it did not expect.
  app.require_subcommand(0, 1);
  app.set_version_flag("--version", std::string("airlock ") + AIRLOCK_VERSION);
  bool verbose = false;
  app.add_flag("-v,--verbose", verbose, "Log what Airlock is doing");

  RunOptions options;
  CLI::App* run = app.add_subcommand("run", "Run code in a fresh microVM and stream its output");
  run->add_option("code", options.code, "The code to run");
  run->add_option("-l,--lang,--language", options.language,
                  "python, javascript or shell (default: the image's first language)");
  run->add_option("--image", options.image,
                  "Root filesystem image: python, javascript, shell, python-data, ... (default: the "
                  "language's own)");
  run->add_option("-f,--file", options.file, "Read the code from this file ('-' for stdin)");
  // One value per -e, so that `-e A=1 'code'` does not swallow the code.
  run->add_option("-e,--env", options.env, "Environment variable NAME=value for the program (repeatable)")
      ->allow_extra_args(false);
  run->add_option("-t,--timeout", options.timeout_s, "Time limit in seconds (1-300)")->capture_default_str();
  run->add_option("-m,--memory", options.memory_mb, "Guest memory in MiB (128-2048)")->capture_default_str();
  run->add_option("--cpus", options.cpus, "Guest vCPUs (1-8)")->capture_default_str();
  run->add_option("--pids", options.max_processes,
                  "Processes and threads the program may have at once, itself included (8-4096)")
      ->capture_default_str();
  run->add_option("--open-files", options.max_open_files, "Files each process may have open (16-65536)")
      ->capture_default_str();
  run->add_option("--disk", options.disk_mb, "MiB the program may write to the guest's disk (1-4096)")
      ->capture_default_str();
  run->add_option("--net", options.network,
                  "Network: none (no network device), allow:NAME[,NAME...] (HTTP/HTTPS to those names "
                  "only, checked on the host) or full")
      ->capture_default_str();
  run->add_option("--mount", options.mounts,
                  "Share a host directory read-only: ro:HOST_DIR:GUEST_DIR (repeatable, at most 8)")
      ->allow_extra_args(false);
  run->add_option("--test-resolve", options.test_resolve,
                  "Testing only: resolve NAME as ADDRESS (a DNS answer, address rules apply) or pin it to "
                  "ADDRESS:PORT (a local test server); NAME=ADDRESS[:PORT], repeatable, runs in-process")
      ->allow_extra_args(false);
  run->add_option("--stdout-limit", options.stdout_limit, "Bytes of stdout kept before the run is stopped")
      ->capture_default_str();
  run->add_option("--stderr-limit", options.stderr_limit, "Bytes of stderr kept before the run is stopped")
      ->capture_default_str();
  run->add_flag("--json", options.json, "Print one JSON result object instead of streaming");
  run->add_option("--accel", options.accel, "Accelerator: auto, kvm or tcg")->capture_default_str();
  run->add_option("--kernel", options.kernel, "Guest kernel from the image manifest (default: its default)");
  run->add_flag("--no-snapshot", options.no_snapshot,
                "Boot a fresh kernel instead of restoring a clone of the cached template snapshot");
  run->add_flag("--fresh-interpreter", options.fresh_interpreter,
                "Start the language's interpreter for this run instead of using the template's prestarted "
                "one (Python: a hash() secret of its own; costs an interpreter start)");
  run->add_flag("--no-daemon", options.no_daemon, "Run in this process even if airlockd is serving");
  run->add_flag("--allow-weak-isolation", options.allow_weak_isolation,
                "Run in this process even if the host cannot apply every confinement layer to QEMU "
                "(airlockd decides for itself)");
  run->add_option("--socket", options.socket,
                  "airlockd socket to use (default $AIRLOCK_SOCKET, else <runtime dir>/airlockd.sock)");
  run->add_option("--images", options.images, "Path of the image manifest (default: beside the binary)");

  RunOptions repo_run;
  repo_run.timeout_s = engine::Limits::kMaxTimeoutS;
  RepoOptions repo;
  CLI::App* repo_verb = app.add_subcommand(
      "repo",
      "Clone a git repository into a fresh sandbox (network only to its host) and run a command in it");
  repo_verb->add_option("url", repo.url, "http(s):// URL of the repository")->required();
  repo_verb->add_option("--ref", repo.ref,
                        "Branch, tag or commit to check out (default: the default branch)");
  repo_verb->add_option("-c,--command", repo.command, "What to run in the checkout (bash -c)")->required();
  repo_verb->add_option("-l,--lang,--language", repo_run.language,
                        "Picks the image by its language: python, javascript, shell, go (default shell)");
  repo_verb->add_option("--image", repo_run.image, "The image to run in (default: the language's own)");
  repo_verb->add_option("-e,--env", repo_run.env, "Environment variable NAME=value (repeatable)")
      ->allow_extra_args(false);
  repo_verb
      ->add_option("-t,--timeout", repo_run.timeout_s, "Time limit for clone and command, seconds (1-300)")
      ->capture_default_str();
  repo_verb->add_option("-m,--memory", repo_run.memory_mb, "Guest memory in MiB (128-2048)")
      ->capture_default_str();
  repo_verb->add_option("--cpus", repo_run.cpus, "Guest vCPUs (1-8)")->capture_default_str();
  repo_verb->add_option("--disk", repo_run.disk_mb, "MiB clone and command may write (1-4096)")
      ->capture_default_str();
  repo_verb->add_flag("--json", repo_run.json, "Print one JSON result object instead of streaming output");
  repo_verb
      ->add_option("--test-resolve", repo_run.test_resolve,
                   "Testing only: NAME=ADDRESS[:PORT], as for run (runs in-process)")
      ->allow_extra_args(false);
  repo_verb->add_flag("--no-daemon", repo_run.no_daemon, "Run in this process even if airlockd is serving");
  repo_verb->add_option("--socket", repo_run.socket, "airlockd socket to use");
  repo_verb->add_option("--images", repo_run.images,
                        "Path of the image manifest (default: beside the binary)");

  airlock::cli::Action sandbox_action;
  airlock::cli::add_cp(app, sandbox_action);
  airlock::cli::add_create(app, sandbox_action);
  airlock::cli::add_exec(app, sandbox_action);
  airlock::cli::add_ps(app, sandbox_action);
  airlock::cli::add_rm(app, sandbox_action);
  airlock::cli::add_touch(app, sandbox_action);
  airlock::cli::add_kill(app, sandbox_action);
  airlock::cli::add_logs(app, sandbox_action);
  airlock::cli::add_ls(app, sandbox_action);
  airlock::cli::add_port(app, sandbox_action);
  airlock::cli::add_snapshot_verbs(app, sandbox_action);
  airlock::cli::add_pause_verbs(app, sandbox_action);
  airlock::cli::add_code_verbs(app, sandbox_action);
  airlock::cli::add_image_verbs(app, sandbox_action);
  airlock::cli::add_mcp(app, sandbox_action);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return kAirlockErrorExit;
  }
  if (verbose) spdlog::set_level(spdlog::level::debug);

  if (!run->parsed() && !repo_verb->parsed() && !sandbox_action) {
    std::cerr << app.help() << "airlock: error: no command given (try 'airlock run --help')\n";
    return kAirlockErrorExit;
  }
  try {
    if (run->parsed()) return run_command(options);
    if (repo_verb->parsed()) return repo_command(repo_run, repo);
    return sandbox_action();
  } catch (const Error& e) {
    spdlog::error("error: {}", e.what());
    return kAirlockErrorExit;
  } catch (const std::exception& e) {
    spdlog::error("internal error: {}", e.what());
    return kAirlockErrorExit;
  }
  return kAirlockErrorExit;
}
