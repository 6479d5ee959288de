#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace airlock::network {

// What the egress filter learns from the first bytes a guest sends. Both
// parsers read hostile input: they never read past `bytes`, keep no state,
// and say `incomplete` until they have seen enough to decide.
enum class SniffStatus { incomplete, invalid, complete };

// The largest opening a client may send before the filter decides.
inline constexpr size_t kMaxSniffBytes = 32 * 1024;

struct ClientHello {
  SniffStatus status = SniffStatus::incomplete;
  std::string problem;      // when invalid: what was wrong
  std::string server_name;  // canonical SNI host name, when complete
};

// A TLS ClientHello, possibly spread over several handshake records. It must
// carry exactly one SNI host name, and no encrypted inner name (ECH/ESNI),
// since the filter could not see where that one leads.
ClientHello sniff_client_hello(std::string_view bytes);

struct HttpRequestHead {
  SniffStatus status = SniffStatus::incomplete;
  std::string problem;
  size_t head_bytes = 0;  // request line and headers, final CRLF CRLF included
  std::string method;
  std::string host;              // canonical name from Host (and an absolute-form target)
  std::optional<uint16_t> port;  // from Host, if given
  uint64_t content_length = 0;   // body bytes that follow the head
  bool upgrade = false;          // asks to switch protocols (WebSocket): raw bytes follow
};

// One HTTP/1.x request head. Refused as invalid: no Host or more than one,
// CONNECT, a request target naming another host than Host, Transfer-Encoding
// (the body's end could then not be tracked), conflicting Content-Length,
// bare LF line ends, folded headers.
HttpRequestHead sniff_http_request(std::string_view bytes);

}  // namespace airlock::network
