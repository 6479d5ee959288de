// A tty exec's terminal over a WebSocket (GET .../execs/{eid}/terminal),
// spoken to by a Beast client as any WebSocket client would.

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>

#include <boost/asio/local/stream_protocol.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <nlohmann/json.hpp>

#include "support/daemon_fixture.h"
#include "support/test_daemon.h"

namespace airlock::testing {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using nlohmann::json;

class Terminal {
 public:
  Terminal(const std::string& socket_path, const std::string& target) : socket_(context_), ws_(socket_) {
    socket_.connect(asio::local::stream_protocol::endpoint(socket_path));
    // A daemon that stops answering fails the test instead of hanging it.
    timeval timeout{30, 0};
    ::setsockopt(socket_.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    ws_.handshake("airlockd", target);
  }

  void keys(const std::string& bytes) {
    ws_.binary(true);
    ws_.write(asio::buffer(bytes));
  }
  void command(const json& message) {
    ws_.text(true);
    ws_.write(asio::buffer(message.dump()));
  }

  // Reads messages until the terminal's output holds `wanted`, or a text
  // message of `wanted_type` comes; false if the socket closes first.
  bool read_until(const std::string& wanted, const std::string& wanted_type = "") {
    for (;;) {
      beast::flat_buffer buffer;
      beast::error_code error;
      ws_.read(buffer, error);
      if (error) return false;
      const std::string message = beast::buffers_to_string(buffer.data());
      if (ws_.got_binary()) {
        output_ += message;
        if (!wanted.empty() && output_.find(wanted) != std::string::npos) return true;
      } else {
        texts_.push_back(json::parse(message));
        if (!wanted_type.empty() && texts_.back().value("type", "") == wanted_type) return true;
      }
    }
  }
  // Reads what is left; true if the server then closed the socket normally.
  bool closed() {
    for (;;) {
      beast::flat_buffer buffer;
      beast::error_code error;
      ws_.read(buffer, error);
      if (error) return error == websocket::error::closed;
    }
  }

  const std::string& output() const { return output_; }
  const json& last_text() const { return texts_.back(); }

 private:
  asio::io_context context_;
  asio::local::stream_protocol::socket socket_;
  websocket::stream<asio::local::stream_protocol::socket&> ws_;
  std::string output_;
  std::vector<json> texts_;
};

class SandboxTerminals : public DaemonFixture {
 protected:
  // A shell sandbox running `sh` in a terminal: its sandbox's path and its terminal's.
  std::pair<std::string, std::string> start_shell_terminal() {
    const auto created = daemon_->post("/v1/sandboxes", R"({"language":"shell"})");
    EXPECT_EQ(created.status, 201) << created.body;
    const std::string sandbox = "/v1/sandboxes/" + json::parse(created.body)["id"].get<std::string>();
    const auto started = daemon_->post(sandbox + "/execs", R"({"argv":["sh"],"background":true,"tty":true,
                                                                "stdin_open":true})");
    EXPECT_EQ(started.status, 202) << started.body;
    EXPECT_EQ(json::parse(started.body)["tty"], true);
    return {sandbox, sandbox + "/execs/" + json::parse(started.body)["id"].get<std::string>() + "/terminal"};
  }
};

TEST_F(SandboxTerminals, AShellRunsInATerminalOverAWebSocket) {
  ASSERT_TRUE(daemon_->start({"--pool-size", "0"}));
  const auto [sandbox, terminal] = start_shell_terminal();

  Terminal first(daemon_->socket(), terminal);
  first.keys("echo $((6*7))\n");
  ASSERT_TRUE(first.read_until("42\r\n")) << first.output();
  first.command({{"type", "resize"}, {"rows", 33}, {"cols", 101}});
  first.keys("stty size\n");
  ASSERT_TRUE(first.read_until("33 101")) << first.output();
  first.command({{"type", "nonsense"}});
  ASSERT_TRUE(first.read_until("", "error"));
  EXPECT_NE(first.last_text()["message"].get<std::string>().find("unknown message"), std::string::npos);
  first.command({{"type", "resize"}, {"rows", 0}, {"cols", 5}});
  ASSERT_TRUE(first.read_until("", "error")) << "a resize out of range is refused, the session goes on";

  // A second client sees what the terminal showed, and the same terminal.
  Terminal second(daemon_->socket(), terminal);
  ASSERT_TRUE(second.read_until("42\r\n")) << second.output();
  second.keys("echo from-the-second\n");
  ASSERT_TRUE(first.read_until("from-the-second")) << first.output();
  // A client that goes away detaches; the shell goes on.
  { Terminal third(daemon_->socket(), terminal); }
  first.keys("exit 3\n");
  ASSERT_TRUE(first.read_until("", "exit")) << first.output();
  EXPECT_EQ(first.last_text()["result"]["exit_code"], 3) << first.last_text().dump();
  EXPECT_TRUE(first.closed());
  ASSERT_TRUE(second.read_until("", "exit"));
  EXPECT_TRUE(second.closed());

  // What is not a terminal is refused as HTTP.
  EXPECT_EQ(daemon_->get(terminal).status, 426) << "a plain GET of a terminal";
  const auto plain = daemon_->post(sandbox + "/execs", R"({"argv":["sleep","30"],"background":true})");
  const std::string plain_terminal =
      sandbox + "/execs/" + json::parse(plain.body)["id"].get<std::string>() + "/terminal";
  const auto refused = daemon_->request(
      {"-H", "Connection: Upgrade", "-H", "Upgrade: websocket", "-H", "Sec-WebSocket-Version: 13", "-H",
       "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "http://airlockd" + plain_terminal});
  EXPECT_EQ(refused.status, 409) << refused.body;
  EXPECT_EQ(daemon_->get(sandbox + "/execs/ex-999/terminal").status, 404);
}

// A drain does not wait on an attached terminal past its grace period: the
// client gets a normal close, and the daemon exits cleanly.
TEST_F(SandboxTerminals, ADrainClosesAttachedTerminals) {
  ASSERT_TRUE(daemon_->start({"--pool-size", "0", "--drain-timeout", "1"}));
  Terminal terminal(daemon_->socket(), start_shell_terminal().second);
  terminal.keys("echo attached\n");
  ASSERT_TRUE(terminal.read_until("attached\r\n"));
  daemon_->process().kill(SIGTERM);
  EXPECT_TRUE(terminal.closed()) << "the terminal was cut off, not closed";
  EXPECT_EQ(daemon_->process().wait_or_kill(std::chrono::seconds(30)).exit_code, 0);
}

}  // namespace
}  // namespace airlock::testing
