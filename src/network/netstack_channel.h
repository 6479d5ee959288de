#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/unique_fd.h"

namespace airlock::network {

// The channel between airlockd and one airlock-netstack process: a
// SOCK_SEQPACKET socket pair, one message per datagram, so a message is
// never split or merged and its size is known before it is read. Every
// message is a 12-byte header (type, id, route; host byte order, both ends
// are one host) and at most kMaxNetstackText bytes of UTF-8 text.
//   netstack -> airlockd  connect  {id, route}: open route `route` (an index
//                                   into the routes airlockd gave it)
//                         denial   {text}: a connection the stack refused
//   airlockd -> netstack  connected {id} with the socket (SCM_RIGHTS)
//                         refused   {id, text}: why not (already recorded)
// airlockd believes nothing but the index and the text, which it bounds: it
// never takes a descriptor from the stack, and the stack cannot name a host.
enum class NetstackMessageType : uint32_t { connect = 1, denial = 2, connected = 3, refused = 4 };

inline constexpr size_t kMaxNetstackText = 1024;

struct NetstackMessage {
  NetstackMessageType type = NetstackMessageType::connect;
  uint32_t id = 0;
  uint32_t route = 0;
  std::string text;
  UniqueFd fd;  // `connected` only
};

std::pair<UniqueFd, UniqueFd> make_netstack_channel();

// Sends one message (with `message.fd` attached if it is open); longer text
// is cut. Throws Error(io) when the other end is gone or the send fails.
void send_netstack_message(int channel, const NetstackMessage& message);

// The next message, or nullopt when the other end has closed the channel
// (or, with `wait` false, when none is waiting). A descriptor is taken only
// if `accept_fd`; any other that arrives is closed. Throws Error(protocol)
// for a datagram that is not a well-formed message.
std::optional<NetstackMessage> receive_netstack_message(int channel, bool accept_fd, bool wait = true);

}  // namespace airlock::network
