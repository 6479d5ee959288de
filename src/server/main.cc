// airlockd: the Airlock daemon. Serves docs/api.yaml over a Unix socket and
// keeps warm pools of template clones so a request finds a VM waiting.

#include <fcntl.h>
#include <linux/magic.h>
#include <signal.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <thread>

#include "common/error.h"
#include "common/io.h"
#include "common/temp_dir.h"
#include "common/unique_fd.h"
#include "engine/engine.h"
#include "engine/languages.h"
#include "engine/paths.h"
#include "server/admission.h"
#include "server/api.h"
#include "server/http_server.h"
#include "server/metrics.h"

namespace {

using namespace airlock;

struct Options {
  std::string socket;
  std::string images;
  std::string snapshot_dir;
  bool exit_with_stdin = false;
  int pool_size = 1;
  int max_concurrent = 4;
  int max_queued = 16;
  int queue_timeout_s = 10;
  int max_connections = 64;
  int io_timeout_s = 10;
  int output_budget_mb = 1024;
  int vm_memory_budget_mb = 0;  // 0: three quarters of the host's memory
  int vm_cpu_budget = 0;        // 0: four vCPUs per host core
  int max_pools = 16;
  int max_sandboxes = 32;
  int pool_idle_timeout_s = 600;
  int drain_timeout_s = 30;
  int64_t template_ram_budget_mb = -1;
  int64_t disk_budget_mb = 0;  // 0: half of what the runtime directory's filesystem has free
  bool allow_tmpfs_runtime_dir = false;
  std::string operator_token_file;
  std::string listen;      // host:port on loopback, optional
  std::string token_file;  // required with listen
  bool allow_weak_isolation = false;
  bool allow_full_network = false;
  std::vector<std::string> test_resolve;
  std::vector<std::string> mount_roots;
};

// The token is checked on the file read, not on a path looked up again.
std::string read_token(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC));
  if (!fd) throw_errno("open", path);
  struct stat info {};
  if (::fstat(fd.get(), &info) < 0) throw_errno("fstat", path);
  if (!S_ISREG(info.st_mode))
    throw Error(ErrorCode::invalid_argument, "token file " + path + " is not a regular file");
  if (info.st_uid != ::geteuid()) {
    throw Error(ErrorCode::invalid_argument,
                "token file " + path + " belongs to uid " + std::to_string(info.st_uid) +
                    ", not to airlockd's user (uid " + std::to_string(::geteuid()) +
                    "); anyone who owns it can change it");
  }
  if (info.st_mode & 077) {
    throw Error(ErrorCode::invalid_argument,
                "token file " + path + " is readable by others; make it owner-only (chmod 600)");
  }
  std::string token(4096, '\0');
  ssize_t n = ::read(fd.get(), token.data(), token.size());
  if (n < 0) throw_errno("read", path);
  token.resize(static_cast<size_t>(n));
  while (!token.empty() && std::isspace(static_cast<unsigned char>(token.back()))) token.pop_back();
  return token;
}

std::string default_socket() {
  if (const char* path = std::getenv("AIRLOCK_SOCKET"); path && *path) return path;
  return engine::default_runtime_dir() + "/airlockd.sock";
}

// The runtime directory holds every VM's disk overlay. On tmpfs those writes
// are host RAM, outside every memory limit: refused, loudly, unless asked for.
// Returns the space its filesystem has free, in MiB.
int64_t check_runtime_dir(bool allow_tmpfs) {
  const std::string dir = engine::default_runtime_dir();
  make_directories(dir);
  struct statfs info {};
  if (::statfs(dir.c_str(), &info) < 0) throw_errno("statfs", dir);
  if (info.f_type == TMPFS_MAGIC && !allow_tmpfs) {
    throw Error(
        ErrorCode::invalid_argument,
        "the runtime directory " + dir +
            " is on tmpfs: what every VM writes to its disk would be host RAM, outside every memory "
            "limit. Set AIRLOCK_RUNTIME_DIR to a directory on disk, or pass --allow-tmpfs-runtime-dir");
  }
  return static_cast<int64_t>(info.f_bavail) * static_cast<int64_t>(info.f_bsize) >> 20;
}

int serve(const Options& options) {
  // Signals are taken by one thread with sigwait; every other thread blocks them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) sigaddset(&stop_signals, sig);
  ::pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  engine::EngineOptions engine_options;
  engine_options.manifest_path = options.images;
  engine_options.snapshot_dir = options.snapshot_dir;
  engine_options.notice = [](const std::string& text) { spdlog::info("{}", text); };
  engine_options.allow_weak_isolation = options.allow_weak_isolation;
  engine_options.allow_full_network = options.allow_full_network;
  engine_options.mount_roots = options.mount_roots;
  engine_options.template_memory_budget_mb = options.template_ram_budget_mb;
  for (const auto& entry : options.test_resolve) {
    auto parsed = network::parse_resolver_entry(entry);
    engine_options.test_resolver[parsed.name] = parsed;
  }
  const int64_t runtime_free_mb = check_runtime_dir(options.allow_tmpfs_runtime_dir);
  engine::Engine engine(engine_options);
  // A daemon that would refuse every run says so at start, not per request.
  engine.require_isolation();
  const std::string accel(vmm::to_string(engine.accelerator(vmm::AccelChoice::automatic)));

  server::Metrics metrics;
  server::Admission admission(options.max_concurrent, options.max_queued,
                              std::chrono::seconds(options.queue_timeout_s));
  server::ByteBudget output_budget(static_cast<uint64_t>(options.output_budget_mb) << 20);
  const int64_t host_memory_mb =
      static_cast<int64_t>(::sysconf(_SC_PHYS_PAGES)) * ::sysconf(_SC_PAGESIZE) >> 20;
  engine::VmBudget vm_budget(
      options.vm_memory_budget_mb ? options.vm_memory_budget_mb : host_memory_mb * 3 / 4,
      options.vm_cpu_budget ? options.vm_cpu_budget : 4 * static_cast<int>(::sysconf(_SC_NPROCESSORS_ONLN)));
  server::ByteBudget disk_budget(
      static_cast<uint64_t>(options.disk_budget_mb ? options.disk_budget_mb : runtime_free_mb / 2) << 20);
  server::Api api(
      engine, admission, {output_budget, disk_budget, vm_budget}, metrics, accel,
      {options.max_pools, options.max_sandboxes, std::chrono::seconds(options.pool_idle_timeout_s)});
  for (const char* language : {"python", "javascript", "shell"}) {
    engine::Profile profile;
    profile.language = language;
    api.add_pool(profile, options.pool_size);
  }
  const std::string socket_path = options.socket.empty() ? default_socket() : options.socket;
  server::ConnectionLimits limits;
  limits.max_unix = limits.max_tcp = options.max_connections;
  limits.head = limits.write = std::chrono::seconds(options.io_timeout_s);
  limits.body = 3 * limits.head;
  limits.idle = 6 * limits.head;
  server::HttpServer server(
      socket_path,
      [&api](const server::HttpRequest& request, server::ResponseWriter& writer) {
        api.handle(request, writer);
      },
      limits);
  server.stream_bodies(server::Api::streams_body, server::Api::kMaxUploadBytes);
  if (!options.listen.empty()) {
    if (options.token_file.empty()) throw Error(ErrorCode::invalid_argument, "--listen needs --token-file");
    const size_t colon = options.listen.rfind(':');
    if (colon == std::string::npos) {
      throw Error(ErrorCode::invalid_argument, "--listen takes host:port, e.g. 127.0.0.1:8719");
    }
    server.listen_tcp(options.listen.substr(0, colon), std::stoi(options.listen.substr(colon + 1)),
                      read_token(options.token_file),
                      options.operator_token_file.empty() ? "" : read_token(options.operator_token_file));
    spdlog::info("also serving on {} (bearer token required)", options.listen);
  }
  std::thread signal_waiter([&server, &stop_signals] {
    int received = 0;
    ::sigwait(&stop_signals, &received);
    spdlog::info("signal {}: draining", received);
    server.stop();
  });
  if (options.exit_with_stdin) {
    // A parent that starts a private daemon (the SDK, the MCP server) holds our
    // stdin's write end: when the parent dies however it dies, even SIGKILL, the
    // pipe reads EOF and the daemon drains as on SIGTERM, leaving no VM behind.
    std::thread([] {
      char byte;
      while (true) {
        const ssize_t got = ::read(STDIN_FILENO, &byte, 1);
        if (got == 0 || (got < 0 && errno != EINTR)) break;
      }
      spdlog::info("stdin closed: the parent that started this daemon is gone");
      ::kill(::getpid(), SIGTERM);
    }).detach();
  }
  spdlog::info("serving on {} (accel {}, {} warm VM(s) per language)", socket_path, accel, options.pool_size);
  server.serve(std::chrono::seconds(options.drain_timeout_s), [&api] {
    spdlog::info("drain: the grace period is over; cancelling the runs still going");
    api.cancel_running();
  });
  // In-flight requests have finished; ready VMs go with their pools.
  api.shutdown();
  signal_waiter.join();
  spdlog::info("stopped");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  auto logger = spdlog::stderr_color_mt("airlockd");
  logger->set_pattern("airlockd: %^%v%$");
  spdlog::set_default_logger(logger);

  Options options;
  CLI::App app{"airlockd: the Airlock daemon (HTTP API on a Unix socket, warm VM pools)"};
  app.set_version_flag("--version", std::string("airlockd ") + AIRLOCK_VERSION);
  app.add_option("--socket", options.socket,
                 "Unix socket to serve on (default $AIRLOCK_SOCKET, else <runtime dir>/airlockd.sock)");
  app.add_option("--images", options.images, "Image manifest (default: beside the binary)");
  app.add_option("--snapshot-dir", options.snapshot_dir,
                 "Where user snapshots are kept (default: <cache dir>/snapshots); they outlive airlockd");
  app.add_option("--listen", options.listen, "Also serve TCP on loopback, host:port (needs --token-file)");
  app.add_option("--token-file", options.token_file, "File holding the bearer token for --listen (mode 600)");
  app.add_flag("--allow-weak-isolation", options.allow_weak_isolation,
               "Serve even if the host cannot apply every confinement layer to QEMU");
  app.add_flag("--allow-full-network", options.allow_full_network,
               "Serve runs asking for network 'full' (unfiltered: reaches this host's network and cloud "
               "metadata too); without it only none and allow: are served");
  app.add_option("--mount-root", options.mount_roots,
                 "A host directory whose subdirectories runs may mount read-only (repeatable); without "
                 "one, runs asking for mounts are refused")
      ->allow_extra_args(false);
  app.add_option("--test-resolve", options.test_resolve,
                 "Testing only: resolve NAME as ADDRESS (a DNS answer, address rules apply) or pin it to "
                 "ADDRESS:PORT (a local test server) for allow: networks; NAME=ADDRESS[:PORT], repeatable")
      ->allow_extra_args(false);
  app.add_flag("--exit-with-stdin", options.exit_with_stdin,
               "Drain and stop when stdin reaches end of file: for a parent that starts a private daemon and "
               "holds the other end of a pipe, so the daemon ends with it");
  app.add_option("--pool-size", options.pool_size, "Warm VMs kept ready per language")
      ->check(CLI::Range(0, 64))
      ->capture_default_str();
  app.add_option("--max-concurrent", options.max_concurrent, "Runs at once")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  app.add_option("--max-queued", options.max_queued, "Requests waiting for a slot before 429")
      ->check(CLI::Range(0, 4096))
      ->capture_default_str();
  app.add_option("--queue-timeout", options.queue_timeout_s, "Seconds a request may wait for a slot")
      ->check(CLI::Range(1, 300))
      ->capture_default_str();
  app.add_option("--max-connections", options.max_connections,
                 "Open connections at once, on the Unix socket and on TCP each; more are refused with 503")
      ->check(CLI::Range(1, 4096))
      ->capture_default_str();
  app.add_option("--io-timeout", options.io_timeout_s,
                 "Seconds a client may take to send a request's head or to take each part of a response "
                 "(3x for a body, 6x idle between requests); slower ones are disconnected")
      ->check(CLI::Range(1, 300))
      ->capture_default_str();
  app.add_option("--operator-token-file", options.operator_token_file,
                 "With --listen: a second token (mode 600) for TCP clients allowed to manage pools, which "
                 "otherwise only the Unix socket's peers may");
  app.add_option("--vm-memory-budget-mb", options.vm_memory_budget_mb,
                 "Guest memory (+64 MiB each) all VMs, pooled and running, may take together (default: 3/4 "
                 "of the host's)")
      ->check(CLI::Range(256, 1 << 24));
  app.add_option("--vm-cpu-budget", options.vm_cpu_budget,
                 "vCPUs all VMs, pooled and running, may have together (default: 4 per host core)")
      ->check(CLI::Range(1, 4096));
  app.add_option("--template-ram-budget-mb", options.template_ram_budget_mb,
                 "Host RAM (in /dev/shm) template snapshots may take together; the least recently used "
                 "are evicted past it, never one a VM maps (default: a quarter of the host's memory; 0: no "
                 "budget)")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 30));
  app.add_option("--disk-budget-mb", options.disk_budget_mb,
                 "Disk all runs in progress may write together (each reserves its disk_mb + 32 MiB; 429 "
                 "beyond); default: half of what the runtime directory's filesystem has free")
      ->check(CLI::Range(int64_t{64}, int64_t{1} << 40));
  app.add_flag("--allow-tmpfs-runtime-dir", options.allow_tmpfs_runtime_dir,
               "Serve even if the runtime directory (every VM's disk overlay) is on tmpfs, i.e. host RAM");
  app.add_option("--drain-timeout", options.drain_timeout_s,
                 "On SIGTERM, seconds running requests have to finish before they are cancelled")
      ->check(CLI::Range(0, 3600))
      ->capture_default_str();
  app.add_option("--max-pools", options.max_pools, "Pools callers may create with POST /v1/pools")
      ->check(CLI::Range(0, 256))
      ->capture_default_str();
  app.add_option("--max-sandboxes", options.max_sandboxes,
                 "Sandboxes (POST /v1/sandboxes) live at once; more get 429")
      ->check(CLI::Range(0, 4096))
      ->capture_default_str();
  app.add_option("--pool-idle-timeout", options.pool_idle_timeout_s,
                 "Seconds after which a created pool no run has used is removed")
      ->check(CLI::Range(1, 86400))
      ->capture_default_str();
  app.add_option("--output-budget-mb", options.output_budget_mb,
                 "Memory all runs in progress may hold for their output together; each reserves 3x its "
                 "stdout and stderr limits (+8 MiB streamed), and one that does not fit gets 429")
      ->check(CLI::Range(16, 1 << 20))
      ->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  try {
    return serve(options);
  } catch (const std::exception& e) {
    spdlog::error("error: {}", e.what());
    return 1;
  }
}
