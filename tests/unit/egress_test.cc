// The egress filter against real sockets: a socket pair stands for the guest's
// connection, a loopback listener for the upstream server (reached through a
// pinned test route, as the integration tests do).

#include "network/egress.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include <future>
#include <mutex>
#include <thread>

#include "common/io.h"
#include "network/upstream.h"

namespace airlock::network {
namespace {

// Everything `fd` delivers until its peer closes or `quiet_ms` pass without a byte.
std::string read_until_eof(int fd, int quiet_ms) {
  std::string data;
  char buffer[4096];
  for (;;) {
    pollfd ready{fd, POLLIN, 0};
    if (::poll(&ready, 1, quiet_ms) != 1) return data;
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n <= 0) return data;
    data.append(buffer, static_cast<size_t>(n));
  }
}

// Accepts one connection, answers "upstream\n", then records what it reads until EOF.
class RecordingServer {
 public:
  // `accept_ms`: how long to wait for the filter to connect (short when it must not).
  explicit RecordingServer(int accept_ms = 3000) : accept_ms_(accept_ms) {
    listener_ = UniqueFd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(listener_.get(), reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
    socklen_t length = sizeof address;
    ::getsockname(listener_.get(), reinterpret_cast<sockaddr*>(&address), &length);
    port_ = ntohs(address.sin_port);
    ::listen(listener_.get(), 4);
    thread_ = std::thread([this] { serve(); });
  }
  ~RecordingServer() { thread_.join(); }

  uint16_t port() const { return port_; }
  std::string received() {
    thread_.join();
    thread_ = std::thread([] {});
    return received_;
  }
  bool accepted() const { return accepted_; }

 private:
  void serve() {
    pollfd ready{listener_.get(), POLLIN, 0};
    if (::poll(&ready, 1, accept_ms_) != 1) return;
    UniqueFd connection(::accept(listener_.get(), nullptr, nullptr));
    accepted_ = true;
    write_all(connection.get(), "upstream\n");
    received_ = read_until_eof(connection.get(), 5000);
  }

  int accept_ms_;
  UniqueFd listener_;
  uint16_t port_ = 0;
  std::string received_;
  std::atomic<bool> accepted_ = false;
  std::thread thread_;
};

struct Outcome {
  std::string guest_read;  // everything the guest side got back
  std::vector<std::string> denied;
};

// Runs serve_egress for `route` with the guest sending `sent` and then closing its side.
Outcome exchange(const EgressRoute& route, const ResolverMap& resolver, const std::string& sent) {
  auto [guest, filter_side] = make_socket_pair();
  UniqueFd stop(::eventfd(0, EFD_CLOEXEC));
  Outcome outcome;
  std::mutex mutex;
  std::thread filter([&, fd = filter_side.release()] {
    auto denied = [&](const std::string& reason) {
      std::lock_guard lock(mutex);
      outcome.denied.push_back(reason);
    };
    // As in airlockd: the connector reports its own refusals.
    auto connect = [&](const EgressRoute& to) {
      try {
        return connect_route(to, resolver, stop.get());
      } catch (const EgressRefusal& refusal) {
        denied(refusal.reason);
        throw;
      }
    };
    serve_egress(UniqueFd(fd), route, connect, stop.get(), denied);
  });
  write_all(guest.get(), sent);
  ::shutdown(guest.get(), SHUT_WR);
  outcome.guest_read = read_until_eof(guest.get(), 10000);
  filter.join();
  return outcome;
}

ResolverMap pinned(const std::string& name, uint16_t port) {
  ResolverEntry entry = parse_resolver_entry(name + "=127.0.0.1:" + std::to_string(port));
  return {{entry.name, entry}};
}

TEST(Egress, PassesEveryRequestOfAKeptAliveConnectionForTheRightHost) {
  RecordingServer upstream;
  const std::string requests =
      "POST /one HTTP/1.1\r\nHost: api.test\r\nContent-Length: 4\r\n\r\nbody"
      "GET /two HTTP/1.1\r\nHost: API.test:80\r\n\r\n";
  Outcome outcome = exchange({"api.test", kHttpPort}, pinned("api.test", upstream.port()), requests);
  EXPECT_EQ(upstream.received(), requests);
  EXPECT_EQ(outcome.guest_read, "upstream\n");
  EXPECT_TRUE(outcome.denied.empty());
}

TEST(Egress, StopsAConnectionWhoseLaterRequestNamesAnotherHost) {
  RecordingServer upstream;
  const std::string first = "GET /one HTTP/1.1\r\nHost: api.test\r\n\r\n";
  // The body's bytes look like a request line: they must pass as body, not be parsed.
  const std::string second = "POST /x HTTP/1.1\r\nHost: api.test\r\nContent-Length: 6\r\n\r\nGET / ";
  const std::string smuggled = "GET /three HTTP/1.1\r\nHost: evil.test\r\n\r\n";
  Outcome outcome =
      exchange({"api.test", kHttpPort}, pinned("api.test", upstream.port()), first + second + smuggled);
  EXPECT_EQ(upstream.received(), first + second);
  ASSERT_EQ(outcome.denied.size(), 1u);
  EXPECT_NE(outcome.denied[0].find("Host 'evil.test' is not the name connected to (api.test)"),
            std::string::npos);
}

TEST(Egress, TracksChunkedBodiesSoTheNextRequestIsCheckedToo) {
  RecordingServer upstream;
  // The chunk data holds what looks like a request for another host: it is data, and passes.
  const std::string chunked =
      "POST /up HTTP/1.1\r\nHost: api.test\r\nTransfer-Encoding: chunked\r\n\r\n"
      "27\r\nGET / HTTP/1.1\r\nHost: evil.test\r\n\r\nxxxx\r\n0\r\n\r\n";
  const std::string smuggled = "GET /after HTTP/1.1\r\nHost: evil.test\r\n\r\n";
  Outcome outcome =
      exchange({"api.test", kHttpPort}, pinned("api.test", upstream.port()), chunked + smuggled);
  EXPECT_EQ(upstream.received(), chunked);
  ASSERT_EQ(outcome.denied.size(), 1u);
  EXPECT_NE(outcome.denied[0].find("Host 'evil.test'"), std::string::npos) << outcome.denied[0];
}

TEST(Egress, AnUpgradeTheServerDoesNotAcceptLeavesTheStreamChecked) {
  RecordingServer upstream;  // answers "upstream\n": not a 101
  const std::string handshake =
      "GET /ws HTTP/1.1\r\nHost: api.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
  const std::string after = "GET / HTTP/1.1\r\nHost: evil.test\r\n\r\n";
  Outcome outcome = exchange({"api.test", kHttpPort}, pinned("api.test", upstream.port()), handshake + after);
  EXPECT_EQ(upstream.received(), handshake);
  ASSERT_EQ(outcome.denied.size(), 1u);
  EXPECT_NE(outcome.denied[0].find("Host 'evil.test'"), std::string::npos) << outcome.denied[0];
}

TEST(Egress, AnyOtherUpgradeHeaderIsAnOrdinaryRequest) {
  RecordingServer upstream;
  const std::string h2c = "GET / HTTP/1.1\r\nHost: api.test\r\nUpgrade: x\r\n\r\n";
  const std::string after = "GET / HTTP/1.1\r\nHost: other.site\r\n\r\n";
  Outcome outcome =
      exchange({"api.test", kHttpPort}, pinned("api.test", upstream.port()), "\r\n" + h2c + after);
  EXPECT_EQ(upstream.received(), h2c);
  ASSERT_EQ(outcome.denied.size(), 1u);
}

TEST(Egress, RefusesAWrongHostBeforeConnectingAndSaysWhy) {
  RecordingServer upstream(300);
  Outcome outcome = exchange({"api.test", kHttpPort}, pinned("api.test", upstream.port()),
                             "GET / HTTP/1.1\r\nHost: evil.test\r\n\r\n");
  EXPECT_EQ(outcome.guest_read.rfind("HTTP/1.1 403 Forbidden\r\n", 0), 0u) << outcome.guest_read;
  EXPECT_NE(outcome.guest_read.find("evil.test"), std::string::npos);
  EXPECT_FALSE(upstream.accepted());
  upstream.received();
}

TEST(Egress, RefusesAnAnsweredNameThatLeadsToLoopback) {
  ResolverEntry answer = parse_resolver_entry("api.test=127.0.0.1");  // a DNS answer, not a pinned route
  Outcome outcome =
      exchange({"api.test", kHttpPort}, {{answer.name, answer}}, "GET / HTTP/1.1\r\nHost: api.test\r\n\r\n");
  ASSERT_EQ(outcome.denied.size(), 1u);
  EXPECT_NE(outcome.denied[0].find("loopback"), std::string::npos) << outcome.denied[0];
}

std::string u16(size_t value) { return {static_cast<char>(value >> 8), static_cast<char>(value & 0xff)}; }

std::string tls_hello(const std::string& name) {
  const std::string list = std::string(1, '\0') + u16(name.size()) + name;
  const std::string sni = u16(0) + u16(list.size() + 2) + u16(list.size()) + list;
  const std::string body = u16(0x0303) + std::string(32, 'r') + std::string(1, '\0') + u16(2) + u16(0x1301) +
                           std::string(1, '\1') + std::string(1, '\0') + u16(sni.size()) + sni;
  const std::string handshake = std::string(1, '\1') + std::string(1, '\0') + u16(body.size()) + body;
  return std::string(1, 22) + u16(0x0301) + u16(handshake.size()) + handshake;
}

TEST(Egress, PassesATlsHelloForTheRightNameUntouched) {
  RecordingServer upstream;
  const std::string hello = tls_hello("api.test");
  Outcome outcome = exchange({"api.test", kHttpsPort}, pinned("api.test", upstream.port()), hello + "rest");
  EXPECT_EQ(upstream.received(), hello + "rest");
  EXPECT_EQ(outcome.guest_read, "upstream\n");
}

TEST(Egress, AnswersASniMismatchWithAnAlert) {
  RecordingServer upstream(300);
  Outcome outcome =
      exchange({"api.test", kHttpsPort}, pinned("api.test", upstream.port()), tls_hello("evil.test"));
  EXPECT_EQ(outcome.guest_read, std::string("\x15\x03\x01\x00\x02\x02\x70", 7));
  ASSERT_EQ(outcome.denied.size(), 1u);
  EXPECT_NE(outcome.denied[0].find("TLS server name 'evil.test'"), std::string::npos);
  EXPECT_FALSE(upstream.accepted());
  upstream.received();
}

}  // namespace
}  // namespace airlock::network
