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
  bool chunked = false;          // the body is chunked (Transfer-Encoding: chunked)
  bool upgrade = false;          // a WebSocket handshake (Upgrade: websocket, Connection: upgrade)
};

// One HTTP/1.x request head. Refused as invalid: no Host or more than one,
// CONNECT, a request target naming another host than Host, any
// Transfer-Encoding but a lone "chunked" on HTTP/1.1, Transfer-Encoding with
// Content-Length, conflicting Content-Length, bare LF line ends, folded
// headers: every form where two parsers could disagree on where the body ends.
HttpRequestHead sniff_http_request(std::string_view bytes);

// Finds where a chunked request body ends, so that the request after it is
// checked in turn. Bytes pass unchanged; only their framing is read. Strict:
// hex sizes (at most 15 digits), CRLF line ends, bounded extension and
// trailer lines.
class ChunkedBodyScanner {
 public:
  enum class Status { more, done, invalid };
  // How many bytes of `bytes` belong to the body; `status` says whether it
  // ended there (done), needs more (more), or is malformed (invalid).
  size_t scan(std::string_view bytes, Status& status);
  const std::string& problem() const { return problem_; }

 private:
  enum class State { size_line, data, data_end, trailer } state_ = State::size_line;
  std::string line_;  // the size or trailer line read so far
  uint64_t data_left_ = 0;
  size_t trailer_bytes_ = 0;
  std::string problem_;
};

}  // namespace airlock::network
