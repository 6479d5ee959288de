// The channel between airlockd and a guest's network stack: airlockd reads
// what a possibly taken-over stack sends, so every datagram is checked.
#include "network/netstack_channel.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <cstring>

#include "common/error.h"
#include "common/io.h"

namespace airlock::network {
namespace {

NetstackMessage message(NetstackMessageType type, uint32_t id, uint32_t route, std::string text = {}) {
  NetstackMessage m;
  m.type = type;
  m.id = id;
  m.route = route;
  m.text = std::move(text);
  return m;
}

TEST(NetstackChannel, CarriesMessagesAndAConnectedSocket) {
  auto [daemon, stack] = make_netstack_channel();
  send_netstack_message(stack.get(), message(NetstackMessageType::connect, 7, 3));
  auto request = receive_netstack_message(daemon.get(), false);
  ASSERT_TRUE(request);
  EXPECT_EQ(request->type, NetstackMessageType::connect);
  EXPECT_EQ(request->id, 7u);
  EXPECT_EQ(request->route, 3u);

  auto [mine, theirs] = make_socket_pair();
  NetstackMessage answer = message(NetstackMessageType::connected, 7, 0);
  answer.fd = std::move(theirs);
  send_netstack_message(daemon.get(), answer);
  auto received = receive_netstack_message(stack.get(), true);
  ASSERT_TRUE(received && received->fd);
  write_all(received->fd.get(), "through");
  char buffer[16] = {};
  EXPECT_EQ(::read(mine.get(), buffer, sizeof buffer), 7);
  EXPECT_STREQ(buffer, "through");
}

TEST(NetstackChannel, LongTextIsCutAndNothingWaitingIsNotAnEnd) {
  auto [daemon, stack] = make_netstack_channel();
  EXPECT_FALSE(receive_netstack_message(daemon.get(), false, /*wait=*/false));
  send_netstack_message(stack.get(), message(NetstackMessageType::denial, 0, 0, std::string(5000, 'x')));
  auto denial = receive_netstack_message(daemon.get(), false);
  ASSERT_TRUE(denial);
  EXPECT_EQ(denial->text, std::string(kMaxNetstackText, 'x'));
  stack.reset();
  EXPECT_FALSE(receive_netstack_message(daemon.get(), false));  // closed
}

TEST(NetstackChannel, MalformedDatagramsAreProtocolErrors) {
  auto [daemon, stack] = make_netstack_channel();
  auto expect_refused = [&, &daemon = daemon](std::string_view datagram, const std::string& why) {
    ASSERT_EQ(::send(stack.get(), datagram.data(), datagram.size(), 0),
              static_cast<ssize_t>(datagram.size()));
    try {
      receive_netstack_message(daemon.get(), false);
      ADD_FAILURE() << "accepted: " << why;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::protocol) << why;
      EXPECT_NE(std::string(e.what()).find(why), std::string::npos) << e.what();
    }
  };
  expect_refused("short", "a datagram of 5 bytes");
  uint32_t header[3] = {99, 1, 0};
  expect_refused(std::string_view(reinterpret_cast<const char*>(header), sizeof header),
                 "unknown message type 99");
  expect_refused(std::string(12 + kMaxNetstackText + 1, '\1'), "a datagram of");
}

TEST(NetstackChannel, ADescriptorTheDaemonDidNotAskForIsClosed) {
  auto [daemon, stack] = make_netstack_channel();
  auto [kept, passed] = make_pipe();
  NetstackMessage denial = message(NetstackMessageType::denial, 0, 0, "with a descriptor");
  denial.fd = std::move(passed);
  send_netstack_message(stack.get(), denial);
  denial.fd.reset();
  auto received = receive_netstack_message(daemon.get(), /*accept_fd=*/false);
  ASSERT_TRUE(received);
  EXPECT_FALSE(received->fd);
  // Every write end is closed: the pipe reads as ended, so nothing kept the passed descriptor.
  char byte;
  EXPECT_EQ(::read(kept.get(), &byte, 1), 0);
}

}  // namespace
}  // namespace airlock::network
