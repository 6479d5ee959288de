// airlockd against callers that never authenticate, send slowly, open
// connections by the thousand, send oversized heads, stop reading, or ask
// for output that would blow up in memory: each is refused or cut off
// without a body read, a thread, a slot or a buffer of its own, and the Unix
// socket keeps answering. (Pools are empty: the few runs boot clones.)

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/io.h"
#include "common/unique_fd.h"
#include "support/airlock_cli.h"
#include "support/test_daemon.h"

namespace airlock::testing {
namespace {

namespace fs = std::filesystem;

UniqueFd connect_tcp(int port) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::connect(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  return fd;
}

// What the server sent before it closed the connection or `wait` passed
// (generous: these are checks of behaviour, not of speed).
struct Received {
  std::string data;
  bool closed = false;
};
Received receive(int fd, std::chrono::seconds wait = std::chrono::seconds(20)) {
  Received received;
  const auto deadline = std::chrono::steady_clock::now() + wait;
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd ready{fd, POLLIN, 0};
    if (::poll(&ready, 1, 100) <= 0) continue;
    char buffer[4096];
    ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
    if (n <= 0) {
      received.closed = true;
      return received;
    }
    received.data.append(buffer, static_cast<size_t>(n));
  }
  return received;
}

void send_text(int fd, const std::string& text) {
  ASSERT_EQ(::send(fd, text.data(), text.size(), MSG_NOSIGNAL), static_cast<ssize_t>(text.size()));
}

UniqueFd connect_unix(const std::string& path) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  path.copy(address.sun_path, sizeof address.sun_path - 1);
  EXPECT_EQ(::connect(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  return fd;
}

// A number from /proc/<pid>/status ("Threads", "VmHWM" in KiB).
long status_field(pid_t pid, const std::string& field) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind(field + ":", 0) == 0) return std::stol(line.substr(field.size() + 1));
  }
  return -1;
}
int thread_count(pid_t pid) { return static_cast<int>(status_field(pid, "Threads")); }

// The length of what base64 `text` decodes to.
size_t engine_base64_size(const std::string& text) {
  size_t padding =
      text.size() >= 2 && text[text.size() - 2] == '=' ? 2 : (!text.empty() && text.back() == '=');
  return text.size() / 4 * 3 - padding;
}

class DaemonLimits : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("airlock-dl-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    token_file_ = (dir_ / "token").string();
    write_file(token_file_, "s3cret-token-0123456789\n", 0600);
    port_ = free_loopback_port();
    daemon_ = std::make_unique<TestDaemon>(dir_);
  }
  void TearDown() override {
    if (daemon_->running()) {
      auto status = daemon_->stop();
      EXPECT_TRUE(status && status->exit_code == 0) << "airlockd did not drain cleanly";
    }
    daemon_.reset();
    fs::remove_all(dir_);
  }
  void start(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {
        "--pool-size", "0", "--listen", "127.0.0.1:" + std::to_string(port_), "--token-file", token_file_};
    args.insert(args.end(), extra.begin(), extra.end());
    ASSERT_TRUE(daemon_->start(args));
  }

  fs::path dir_;
  std::string token_file_;
  int port_ = 0;
  std::unique_ptr<TestDaemon> daemon_;
};

TEST_F(DaemonLimits, TheTokenIsCheckedOnTheHeadBeforeAnyBodyIsRead) {
  start();
  UniqueFd connection = connect_tcp(port_);
  // A head announcing 2 MiB that never come: the answer must not wait for them.
  send_text(connection.get(), "POST /v1/run HTTP/1.1\r\nHost: x\r\nContent-Length: 2097152\r\n\r\n");
  Received reply = receive(connection.get());
  EXPECT_EQ(reply.data.rfind("HTTP/1.1 401", 0), 0u) << reply.data;
  EXPECT_TRUE(reply.closed);
}

TEST_F(DaemonLimits, ConnectionsBeyondTheCapAreRefusedAtOnceAndUnixKeepsAnswering) {
  start({"--max-connections", "8"});
  const int threads_before = thread_count(daemon_->process().pid());
  std::vector<UniqueFd> idle;
  for (int i = 0; i < 8; ++i) idle.push_back(connect_tcp(port_));
  // Let the server take them in before the rest arrive.
  EXPECT_EQ(daemon_->get("/v1/health").status, 200);
  int refused = 0;
  for (int i = 0; i < 40; ++i) {
    UniqueFd extra = connect_tcp(port_);
    Received reply = receive(extra.get());
    refused += reply.data.rfind("HTTP/1.1 503", 0) == 0 &&
               reply.data.find("too many connections") != std::string::npos;
  }
  EXPECT_EQ(refused, 40);
  // The Unix socket has a cap of its own: the TCP flood does not reach it.
  EXPECT_EQ(daemon_->get("/v1/health").status, 200);
  EXPECT_LE(thread_count(daemon_->process().pid()), threads_before + 8 + 2)
      << "a thread per refused connection";
}

TEST_F(DaemonLimits, SlowAndSilentClientsAreCutOff) {
  start({"--io-timeout", "1"});
  UniqueFd silent = connect_tcp(port_);
  UniqueFd slow = connect_tcp(port_);
  send_text(slow.get(), "GET /v1/health HTTP/1.1\r\n");  // and the rest of its head never comes
  UniqueFd unread = connect_tcp(port_);
  send_text(unread.get(),
            "POST /v1/run HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s3cret-token-0123456789\r\n"
            "Content-Length: 100\r\n\r\n{\"language\":");  // a body that stops halfway
  EXPECT_TRUE(receive(silent.get()).closed) << "a connection that sent nothing was kept";
  EXPECT_TRUE(receive(slow.get()).closed) << "a head that never ended was waited for";
  EXPECT_TRUE(receive(unread.get()).closed) << "a body that never ended was waited for";
  EXPECT_EQ(daemon_->get("/v1/health").status, 200);
}

TEST_F(DaemonLimits, AnOversizedHeadGets431) {
  start();
  UniqueFd connection = connect_tcp(port_);
  send_text(connection.get(),
            "GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Padding: " + std::string(20000, 'a') + "\r\n\r\n");
  Received reply = receive(connection.get());
  EXPECT_EQ(reply.data.rfind("HTTP/1.1 431", 0), 0u) << reply.data.substr(0, 200);
}

TEST_F(DaemonLimits, ATokenFileOfAnotherUserIsRefused) {
  ASSERT_EQ(::chown(token_file_.c_str(), 65534, 65534), 0);
  std::vector<std::string> argv = {fs::path(AIRLOCK_BIN).parent_path() / "airlockd",
                                   "--socket",
                                   (dir_ / "s.sock").string(),
                                   "--pool-size",
                                   "0",
                                   "--listen",
                                   "127.0.0.1:" + std::to_string(port_),
                                   "--token-file",
                                   token_file_};
  auto result = run_command(argv, daemon_->environment(), std::chrono::seconds(60));
  EXPECT_NE(result.status.exit_code, 0);
  EXPECT_NE(result.output.find("belongs to uid 65534"), std::string::npos) << result.output;
}

// A streamed run whose client never reads: its events pile up to the stream's
// bound, the run is cancelled, and its slot (the only one) and VM are free
// for the next caller, who is served instead of getting 429.
TEST_F(DaemonLimits, AClientThatStopsReadingKeepsNeitherItsSlotNorItsVm) {
  start({"--max-concurrent", "1", "--queue-timeout", "120", "--io-timeout", "2"});
  const std::string body = R"({"language":"shell","code":"yes","timeout_s":60,"stdout_limit":67108864})";
  UniqueFd stalled = connect_unix(daemon_->socket());
  send_text(stalled.get(),
            "POST /v1/run HTTP/1.1\r\nHost: x\r\nAccept: application/x-ndjson\r\n"
            "Content-Type: application/json\r\nContent-Length: " +
                std::to_string(body.size()) + "\r\n\r\n" + body);
  // ...and never reads a byte of the answer.
  auto next = daemon_->post("/v1/run", R"({"language":"shell","code":"echo next"})");
  EXPECT_EQ(next.status, 200) << next.body;
  EXPECT_NE(next.body.find("next\\n"), std::string::npos) << next.body;
  EXPECT_NE(next.body.find("\"status\":\"ok\""), std::string::npos) << next.body;
  // Both VMs are gone (the engine retires them off the request's path).
  for (int i = 0; i < 100 && !qemu_processes(dir_.string() + "/").empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(qemu_processes(dir_.string() + "/").empty()) << "the stalled client's VM is still running";
}

// 16 MiB of control bytes (6 bytes each as JSON escapes) go as base64, and the
// daemon's memory for the request stays within the stated 3x its limits.
TEST_F(DaemonLimits, ControlByteOutputIsSentAsBase64WithinAStatedMemoryBound) {
  start();
  const uint64_t limit = 16 << 20;
  const long peak_before_kib = status_field(daemon_->process().pid(), "VmHWM");
  engine::RunRequest request =
      run_request("python", "import sys; sys.stdout.buffer.write(b'\\x01' * (16 << 20))");
  request.stdout_limit = limit + 1;
  auto reply = daemon_->run(request);
  ASSERT_EQ(reply.status, 200) << reply.body.substr(0, 300);
  EXPECT_LE(reply.body.size(), limit * 4 / 3 + (64 << 10)) << "what is sent is bounded by the encoding";
  auto result = nlohmann::json::parse(reply.body);
  EXPECT_EQ(result["status"], "ok") << result["error"];
  EXPECT_EQ(result["stdout_encoding"], "base64");
  EXPECT_EQ(engine_base64_size(result["stdout"].get<std::string>()), limit);
  const long growth_kib = status_field(daemon_->process().pid(), "VmHWM") - peak_before_kib;
  std::printf("16 MiB of control bytes: response %zu bytes, daemon peak grew by %ld KiB\n", reply.body.size(),
              growth_kib);
  EXPECT_LE(growth_kib * 1024, static_cast<long>(3 * limit + (16 << 20)))
      << "more than 3x the output in memory";
}

TEST_F(DaemonLimits, RunsBeyondTheOutputBudgetGet429) {
  start({"--output-budget-mb", "64"});
  auto reply = daemon_->post("/v1/run", R"({"language":"shell","code":"true","stdout_limit":67108864})");
  EXPECT_EQ(reply.status, 429) << reply.body;
  EXPECT_NE(reply.body.find("output budget"), std::string::npos) << reply.body;
  EXPECT_NE(reply.body.find("\"retryable\":true"), std::string::npos) << reply.body;
}

TEST_F(DaemonLimits, RunsBeyondTheDiskBudgetGet429) {
  start({"--disk-budget-mb", "64"});
  auto reply = daemon_->post("/v1/run", R"({"language":"shell","code":"true","disk_mb":100})");
  EXPECT_EQ(reply.status, 429) << reply.body;
  EXPECT_NE(reply.body.find("disk budget"), std::string::npos) << reply.body;
}

// Every VM's disk overlay lives in the runtime directory: on tmpfs, host RAM.
TEST_F(DaemonLimits, ARuntimeDirectoryOnTmpfsIsRefused) {
  const fs::path on_tmpfs = "/dev/shm/airlock-it-runtime-" + std::to_string(::getpid());
  fs::create_directories(on_tmpfs);
  std::vector<std::string> env = daemon_->environment();
  for (auto& variable : env) {
    if (variable.rfind("AIRLOCK_RUNTIME_DIR=", 0) == 0) variable = "AIRLOCK_RUNTIME_DIR=" + on_tmpfs.string();
  }
  auto result = run_command({fs::path(AIRLOCK_BIN).parent_path() / "airlockd", "--socket",
                             (dir_ / "t.sock").string(), "--pool-size", "0"},
                            env, std::chrono::seconds(60));
  EXPECT_NE(result.status.exit_code, 0);
  EXPECT_NE(result.output.find("is on tmpfs"), std::string::npos) << result.output;
  fs::remove_all(on_tmpfs);
}

}  // namespace
}  // namespace airlock::testing
