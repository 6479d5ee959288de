// Network policies end to end through the real `airlock` binary: allowlisted
// names reach a local stand-in server (pinned with --test-resolve), everything
// else is refused by the host's filter and reported; `full` reaches the host's
// own network; malformed policies are refused before any VM starts.

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>

#include "support/cli_fixture.h"
#include "support/test_daemon.h"
#include "support/upstream_server.h"

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
