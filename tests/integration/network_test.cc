// Network policies end to end through the real `airlock` binary: allowlisted
// names reach a local stand-in server (pinned with --test-resolve), everything
// else is refused by the host's filter and reported; `full` reaches the host's
// own network; malformed policies are refused before any VM starts.

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <signal.h>

#include <fstream>
#include <future>
#include <map>

#include "support/cli_fixture.h"
#include "support/test_daemon.h"
#include "support/upstream_server.h"
#include "vmm/jail/layer.h"

namespace airlock::testing {
namespace {

using Network = Cli;

// The first IPv4 address of this host that is not loopback, or "" if none.
std::string host_address() {
  ifaddrs* addresses = nullptr;
  if (::getifaddrs(&addresses) < 0) return "";
  std::string found;
  for (ifaddrs* entry = addresses; entry && found.empty(); entry = entry->ifa_next) {
    if (!entry->ifa_addr || entry->ifa_addr->sa_family != AF_INET || (entry->ifa_flags & IFF_LOOPBACK))
      continue;
    char text[INET_ADDRSTRLEN];
    ::inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(entry->ifa_addr)->sin_addr, text, sizeof text);
    found = text;
  }
  ::freeifaddrs(addresses);
  return found;
}

constexpr const char* kFetch = R"PY(
import urllib.error, urllib.request
for url in ["http://api.test/data", "http://api.test/again", "http://other.test/", "http://API.test/x"]:
    try:
        print(url, urllib.request.urlopen(url, timeout=10).read().decode().strip())
    except urllib.error.URLError as error:
        print(url, "failed:", type(error.reason).__name__)
)PY";

TEST_F(Network, AllowlistReachesOnlyItsNamesAndReportsRefusals) {
  UpstreamServer upstream;
  const json result = airlock_json({"run", "--lang", "python", "--net", "allow:api.test", "--test-resolve",
                                    "api.test=127.0.0.1:" + std::to_string(upstream.port()), kFetch});
  EXPECT_EQ(result["status"], "ok") << result.dump();
  EXPECT_EQ(result["stdout"].get<std::string>(),
            "http://api.test/data host=api.test path=/data\n"
            "http://api.test/again host=api.test path=/again\n"
            "http://other.test/ failed: gaierror\n"
            "http://API.test/x host=api.test path=/x\n");
  EXPECT_EQ(upstream.connections(), 3);
  EXPECT_TRUE(result["network_denied"].empty()) << result.dump();

  // A request that reaches the filter but names another host is refused there and reported.
  const json refused =
      airlock_json({"run", "--lang", "python", "--net", "allow:api.test", "--test-resolve",
                    "api.test=127.0.0.1:" + std::to_string(upstream.port()),
                    "import socket\ns = socket.create_connection(('api.test', 80), timeout=10)\n"
                    "s.sendall(b'GET / HTTP/1.1\\r\\nHost: "
                    "other.test\\r\\n\\r\\n')\nprint(s.recv(200).split(b'\\r\\n')[0].decode())"});
  EXPECT_EQ(refused["stdout"], "HTTP/1.1 403 Forbidden\n") << refused.dump();
  ASSERT_EQ(refused["network_denied"].size(), 1u) << refused.dump();
  EXPECT_EQ(refused["network_denied"][0], "HTTP Host 'other.test' is not the name connected to (api.test)");
  EXPECT_EQ(upstream.connections(), 3);
}

TEST_F(Network, FullReachesTheHostNetworkButNotItsLoopback) {
  const std::string address = host_address();
  ASSERT_FALSE(address.empty()) << "this host has no non-loopback IPv4 address to test 'full' against";
  UpstreamServer upstream(address);
  const std::string code =
      "import socket, urllib.request\n"
      "print(urllib.request.urlopen('http://" +
      address + ":" + std::to_string(upstream.port()) +
      "/full', timeout=10).read().decode().strip())\n"
      "try:\n"
      "    socket.create_connection(('10.0.2.2', " +
      std::to_string(upstream.port()) +
      "), timeout=5)\n"
      "    print('host loopback reached')\n"
      "except OSError:\n"
      "    print('host loopback refused')\n";
  auto result = airlock({"run", "--lang", "python", "--net", "full", code});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(result.out, "host=" + address + ":" + std::to_string(upstream.port()) +
                            " path=/full\nhost loopback refused\n");
}

// What /proc says of a process: "Name:\tvalue" lines of its status.
std::map<std::string, std::string> proc_status(pid_t pid) {
  std::map<std::string, std::string> fields;
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(status, line);) {
    const size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string value = line.substr(colon + 1);
    value.erase(0, value.find_first_not_of(" \t"));
    fields[line.substr(0, colon)] = value;
  }
  return fields;
}

// The pids of processes whose command line contains `needle`.
std::vector<pid_t> processes_with(const std::string& needle) {
  std::vector<pid_t> found;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string name = entry.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream file(entry.path() / "cmdline");
    std::string cmdline((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
    if (cmdline.find(needle) != std::string::npos && cmdline.find("airlock-netstack") != std::string::npos) {
      found.push_back(static_cast<pid_t>(std::stoi(name)));
    }
  }
  return found;
}

std::string namespace_of(const std::string& pid, const char* kind) {
  std::error_code ec;
  return std::filesystem::read_symlink("/proc/" + pid + "/ns/" + kind, ec).string();
}

// The guest's frames are parsed in a process of their own, confined like
// QEMU; a stack that dies (a memory-safety bug's SIGSEGV; here SIGKILL,
// since the stack is PID 1 of its namespace, which ignores a SIGSEGV sent
// from outside) takes only its guest's network with it, and the run says so.
TEST_F(Network, TheStackRunsConfinedInAProcessOfItsOwnAndItsCrashEndsOnlyThatNetwork) {
  UpstreamServer upstream;
  const std::string name = "confined-" + std::to_string(::getpid()) + ".test";
  const std::string code =
      "import time, urllib.request\n"
      "print(urllib.request.urlopen('http://" +
      name +
      "/before', timeout=10).read().decode().strip())\n"
      // A second request once the first answer is read whole: the test's
      // sign that killing the stack can no longer cut that answer short.
      // Its own answer may be cut short by the kill: that is not the test's.
      "try:\n"
      "    urllib.request.urlopen('http://" +
      name +
      "/read', timeout=10).read()\n"
      "except Exception:\n"
      "    pass\n"
      "time.sleep(6)\n"
      "try:\n"
      "    urllib.request.urlopen('http://" +
      name +
      "/after', timeout=5)\n"
      "    print('after: reached')\n"
      "except Exception as error:\n"
      "    print('after: failed')\n";
  auto run = std::async(std::launch::async, [&] {
    return airlock_json({"run", "--lang", "python", "--net", "allow:" + name, "--test-resolve",
                         name + "=127.0.0.1:" + std::to_string(upstream.port()), code});
  });
  // The first answer has reached the program once the stand-in server sees
  // the second request (seeing the first is not enough: under load its
  // answer may still be on its way through the stack).
  std::vector<pid_t> stacks;
  for (int i = 0; i < 600 && (stacks.empty() || upstream.connections() < 2); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    stacks = processes_with(name);
  }
  ASSERT_EQ(stacks.size(), 1u) << "one airlock-netstack for the VM";
  ASSERT_EQ(upstream.connections(), 2);
  const pid_t stack = stacks[0];
  const auto status = proc_status(stack);
  const std::string uid = status.at("Uid");
  EXPECT_EQ(uid.substr(0, uid.find('\t')),
            std::to_string(vmm::jail::jail_uid(vmm::jail::JailUser::netstack)));
  EXPECT_NE(vmm::jail::jail_uid(vmm::jail::JailUser::netstack),
            vmm::jail::jail_uid(vmm::jail::JailUser::vmm));
  EXPECT_EQ(status.at("CapEff"), "0000000000000000");
  EXPECT_EQ(status.at("NoNewPrivs"), "1");
  EXPECT_EQ(status.at("Seccomp"), "2");
  EXPECT_EQ(status.at("Seccomp_filters"), "2") << "the jail's deny-list and the stack's own allowlist";
  const std::string pid = std::to_string(stack);
  for (const char* kind : {"net", "mnt", "pid", "ipc"}) {
    EXPECT_NE(namespace_of(pid, kind), namespace_of("self", kind)) << kind;
  }
  EXPECT_FALSE(std::filesystem::exists("/proc/" + pid + "/root/etc/passwd")) << "its root is its jail";
  // The engine process (the CLI here, airlockd elsewhere) has no network stack mapped at all.
  const std::string engine = status.at("PPid");
  std::ifstream maps("/proc/" + engine + "/maps");
  const std::string mapped((std::istreambuf_iterator<char>(maps)), std::istreambuf_iterator<char>());
  EXPECT_NE(mapped.find("airlock"), std::string::npos) << "read the engine's maps";
  EXPECT_EQ(mapped.find("libslirp"), std::string::npos);

  ASSERT_EQ(::kill(stack, SIGKILL), 0);
  const json result = run.get();
  EXPECT_EQ(result["status"], "ok") << result.dump();
  EXPECT_EQ(result["stdout"], "host=" + name + " path=/before\nafter: failed\n") << result.dump();
  ASSERT_EQ(result["network_denied"].size(), 1u) << result.dump();
  EXPECT_EQ(result["network_denied"][0],
            "the guest's network stack ended (killed by signal 9 (Killed)): "
            "the guest has no network from here on");
  EXPECT_EQ(upstream.connections(), 2);
  EXPECT_TRUE(processes_with(name).empty());
}

TEST(NetworkThroughTheDaemon, APoolOfAnAllowProfileServesItsRuns) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("airlock-net-pool-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  UpstreamServer upstream;
  {
    TestDaemon daemon(dir);
    ASSERT_TRUE(daemon.start(
        {"--pool-size", "0", "--test-resolve", "api.test=127.0.0.1:" + std::to_string(upstream.port())}));
    const nlohmann::json profile = {{"language", "python"}, {"network", "allow:API.test"}};
    nlohmann::json pool_request = profile;
    pool_request["target"] = 1;
    auto created = daemon.post("/v1/pools", pool_request.dump());
    ASSERT_EQ(created.status, 201) << created.body;
    const auto pool = nlohmann::json::parse(created.body);
    EXPECT_EQ(pool["network"], "allow:api.test");
    ASSERT_TRUE(daemon.wait_for_ready(pool["name"].get<std::string>())) << daemon.get("/v1/pools").body;

    nlohmann::json run = profile;
    run["code"] =
        "import urllib.request\nprint(urllib.request.urlopen('http://api.test/pooled').read().decode())";
    auto reply = daemon.post("/v1/run", run.dump());
    ASSERT_EQ(reply.status, 200) << reply.body;
    const auto result = nlohmann::json::parse(reply.body);
    EXPECT_EQ(result["status"], "ok") << reply.body;
    EXPECT_EQ(result["pool_hit"], true) << reply.body;
    EXPECT_EQ(result["stdout"], "host=api.test path=/pooled\n\n") << reply.body;
    auto status = daemon.stop();
    EXPECT_TRUE(status && status->exit_code == 0);
  }
  EXPECT_TRUE(qemu_processes(dir.string() + "/").empty());
  fs::remove_all(dir);
}

TEST_F(Network, MalformedPoliciesAreRefusedNamingThePart) {
  auto literal = airlock({"run", "--lang", "python", "--net", "allow:10.0.0.1", "print(1)"});
  EXPECT_EQ(literal.exit_code, 125);
  EXPECT_NE(literal.err.find("'10.0.0.1' is not a domain name"), std::string::npos) << literal.err;
  auto wildcard = airlock({"run", "--lang", "python", "--net", "allow:*.example.com", "print(1)"});
  EXPECT_EQ(wildcard.exit_code, 125);
  EXPECT_NE(wildcard.err.find("wildcards are not supported"), std::string::npos) << wildcard.err;
  auto resolver =
      airlock({"run", "--lang", "python", "--net", "allow:a.test", "--test-resolve", "a.test", "print(1)"});
  EXPECT_EQ(resolver.exit_code, 125);
  EXPECT_NE(resolver.err.find("resolver entry 'a.test' is not NAME=ADDRESS[:PORT]"), std::string::npos)
      << resolver.err;
}

}  // namespace
}  // namespace airlock::testing
