#include "network/sniff.h"

#include <algorithm>
#include <vector>

#include "network/policy.h"

namespace airlock::network {

namespace {

// Bounds-checked big-endian reader over a byte string.
class Reader {
 public:
  explicit Reader(std::string_view bytes) : bytes_(bytes) {}
  bool has(size_t n) const { return bytes_.size() - position_ >= n; }
  size_t left() const { return bytes_.size() - position_; }
  uint32_t number(size_t width) {
    uint32_t value = 0;
    for (size_t i = 0; i < width; ++i) value = (value << 8) | static_cast<uint8_t>(bytes_[position_ + i]);
    position_ += width;
    return value;
  }
  std::string_view take(size_t n) {
    std::string_view part = bytes_.substr(position_, n);
    position_ += n;
    return part;
  }

 private:
  std::string_view bytes_;
  size_t position_ = 0;
};

// Guest bytes shown in a reason: printable ASCII, everything else as '?'.
std::string printable(std::string_view bytes) {
  std::string shown(bytes);
  for (char& c : shown) {
    if (c < 0x20 || c > 0x7e) c = '?';
  }
  return shown;
}

ClientHello invalid_hello(std::string problem) { return {SniffStatus::invalid, std::move(problem), {}}; }

constexpr uint8_t kHandshakeRecord = 22;
constexpr uint8_t kClientHelloType = 1;
constexpr uint16_t kServerNameExtension = 0;

ClientHello parse_hello_body(std::string_view body) {
  Reader reader(body);
  if (!reader.has(2 + 32 + 1)) return invalid_hello("ClientHello too short");
  reader.take(2 + 32);  // legacy version, random
  const size_t session_id = reader.number(1);
  if (session_id > 32 || !reader.has(session_id)) return invalid_hello("bad session id");
  reader.take(session_id);
  if (!reader.has(2)) return invalid_hello("no cipher suites");
  const size_t suites = reader.number(2);
  if (suites < 2 || suites % 2 != 0 || !reader.has(suites)) return invalid_hello("bad cipher suites");
  reader.take(suites);
  if (!reader.has(1)) return invalid_hello("no compression methods");
  const size_t compressions = reader.number(1);
  if (compressions < 1 || !reader.has(compressions)) return invalid_hello("bad compression methods");
  reader.take(compressions);
  if (!reader.has(2)) return invalid_hello("no extensions, so no server name (SNI)");
  const size_t extensions_length = reader.number(2);
  if (reader.left() != extensions_length) return invalid_hello("extensions do not fill the ClientHello");
  std::optional<std::string> server_name;
  while (reader.left() > 0) {
    if (!reader.has(4)) return invalid_hello("truncated extension header");
    const uint16_t type = static_cast<uint16_t>(reader.number(2));
    const size_t length = reader.number(2);
    if (!reader.has(length)) return invalid_hello("truncated extension");
    Reader extension(reader.take(length));
    // ECH (and its ESNI draft) is let through: browsers send it as GREASE on
    // every connection, and a real inner name still reaches only the allowed
    // name's resolved address, like domain fronting (docs/security.md).
    if (type != kServerNameExtension) continue;
    if (server_name) return invalid_hello("more than one server_name extension");
    if (!extension.has(2)) return invalid_hello("bad server_name list");
    const size_t list_length = extension.number(2);  // read before left() is asked
    if (list_length != extension.left()) return invalid_hello("bad server_name list");
    while (extension.left() > 0) {
      if (!extension.has(3)) return invalid_hello("truncated server name");
      const uint8_t name_type = static_cast<uint8_t>(extension.number(1));
      const size_t name_length = extension.number(2);
      if (!extension.has(name_length)) return invalid_hello("truncated server name");
      const std::string_view name = extension.take(name_length);
      if (name_type != 0) continue;  // only host_name (0) is defined
      if (server_name) return invalid_hello("more than one SNI host name");
      auto canonical = canonical_domain(name);
      if (!canonical)
        return invalid_hello("SNI '" + printable(name.substr(0, 255)) + "' is not a domain name");
      server_name = *canonical;
    }
    if (!server_name) return invalid_hello("server_name extension without a host name");
  }
  if (!server_name) return invalid_hello("no server name (SNI) in the ClientHello");
  return {SniffStatus::complete, {}, *server_name};
}

bool is_token_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) ||
         std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool equals_ignoring_case(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

std::string_view trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

HttpRequestHead invalid_head(std::string problem) {
  HttpRequestHead head;
  head.status = SniffStatus::invalid;
  head.problem = std::move(problem);
  return head;
}

// "name" or "name:port" (no userinfo) -> canonical name and port.
bool parse_authority(std::string_view authority, std::string& host, std::optional<uint16_t>& port) {
  if (authority.find('@') != std::string_view::npos || authority.empty() || authority.front() == '[') {
    return false;
  }
  const size_t colon = authority.find(':');
  if (colon != std::string_view::npos) {
    const std::string_view digits = authority.substr(colon + 1);
    if (digits.empty() || digits.size() > 5 ||
        !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      return false;
    }
    const int number = std::stoi(std::string(digits));
    if (number < 1 || number > 65535) return false;
    port = static_cast<uint16_t>(number);
    authority = authority.substr(0, colon);
  }
  auto canonical = canonical_domain(authority);
  if (!canonical) return false;
  host = *canonical;
  return true;
}

}  // namespace

ClientHello sniff_client_hello(std::string_view bytes) {
  // Handshake messages may be fragmented over records: gather their payloads.
  std::string handshake;
  Reader records(bytes);
  for (;;) {
    if (handshake.size() >= 4) {
      const size_t body_length = (static_cast<uint8_t>(handshake[1]) << 16) |
                                 (static_cast<uint8_t>(handshake[2]) << 8) |
                                 static_cast<uint8_t>(handshake[3]);
      if (static_cast<uint8_t>(handshake[0]) != kClientHelloType) return invalid_hello("not a ClientHello");
      if (body_length > kMaxSniffBytes) return invalid_hello("ClientHello larger than the filter accepts");
      if (handshake.size() >= 4 + body_length)
        return parse_hello_body(std::string_view(handshake).substr(4, body_length));
    }
    if (!records.has(5)) {
      if (bytes.size() >= kMaxSniffBytes) return invalid_hello("no complete ClientHello in the first 32 KiB");
      return {SniffStatus::incomplete, {}, {}};
    }
    const uint8_t type = static_cast<uint8_t>(records.number(1));
    const uint32_t version = records.number(2);
    const size_t length = records.number(2);
    if (type != kHandshakeRecord) return invalid_hello("not a TLS handshake");
    if ((version >> 8) != 3) return invalid_hello("not a TLS record version");
    if (length == 0 || length > (1 << 14)) return invalid_hello("bad TLS record length");
    if (!records.has(length)) return {SniffStatus::incomplete, {}, {}};
    handshake.append(records.take(length));
  }
}

HttpRequestHead sniff_http_request(std::string_view bytes) {
  const size_t end = bytes.find("\r\n\r\n");
  if (end == std::string_view::npos) {
    if (bytes.size() >= kMaxSniffBytes) return invalid_head("request head larger than 32 KiB");
    // A bare LF anywhere already decides: such a request is refused.
    for (size_t i = bytes.find('\n'); i != std::string_view::npos; i = bytes.find('\n', i + 1)) {
      if (i == 0 || bytes[i - 1] != '\r') return invalid_head("line ends must be CRLF");
    }
    return {};
  }
  HttpRequestHead head;
  head.head_bytes = end + 4;
  std::vector<std::string_view> lines;
  std::string_view rest = bytes.substr(0, end + 2);
  while (!rest.empty()) {
    const size_t crlf = rest.find("\r\n");
    const std::string_view line = rest.substr(0, crlf);
    if (line.find('\n') != std::string_view::npos || line.find('\r') != std::string_view::npos) {
      return invalid_head("line ends must be CRLF");
    }
    if (line.find('\0') != std::string_view::npos) return invalid_head("NUL byte in the request head");
    lines.push_back(line);
    rest.remove_prefix(crlf + 2);
  }
  // Request line: METHOD SP TARGET SP HTTP/1.x
  const std::string_view request_line = lines.front();
  const size_t first_space = request_line.find(' ');
  const size_t last_space = request_line.rfind(' ');
  if (first_space == std::string_view::npos || first_space == last_space)
    return invalid_head("malformed request line");
  head.method = std::string(request_line.substr(0, first_space));
  const std::string_view target = request_line.substr(first_space + 1, last_space - first_space - 1);
  const std::string_view version = request_line.substr(last_space + 1);
  if (head.method.empty() || !std::all_of(head.method.begin(), head.method.end(), is_token_char)) {
    return invalid_head("malformed method");
  }
  if (version != "HTTP/1.1" && version != "HTTP/1.0") return invalid_head("not HTTP/1.0 or HTTP/1.1");
  if (head.method == "CONNECT") return invalid_head("CONNECT tunnels are refused");
  if (target.empty() || target.find(' ') != std::string_view::npos)
    return invalid_head("malformed request target");

  std::optional<std::string> host_header;
  std::optional<uint64_t> content_length;
  bool transfer_encoding = false;
  bool websocket = false;
  bool connection_upgrade = false;
  for (size_t i = 1; i < lines.size(); ++i) {
    const std::string_view line = lines[i];
    if (line.front() == ' ' || line.front() == '\t') return invalid_head("folded header lines are refused");
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) return invalid_head("malformed header line");
    const std::string_view name = line.substr(0, colon);
    if (!std::all_of(name.begin(), name.end(), is_token_char)) return invalid_head("malformed header name");
    const std::string_view value = trim(line.substr(colon + 1));
    if (equals_ignoring_case(name, "host")) {
      if (host_header) return invalid_head("more than one Host header");
      host_header = std::string(value);
    } else if (equals_ignoring_case(name, "content-length")) {
      if (value.empty() || value.size() > 15 ||
          !std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        return invalid_head("malformed Content-Length");
      }
      const uint64_t length = std::stoull(std::string(value));
      if (content_length && *content_length != length)
        return invalid_head("conflicting Content-Length headers");
      content_length = length;
    } else if (equals_ignoring_case(name, "transfer-encoding")) {
      if (transfer_encoding) return invalid_head("more than one Transfer-Encoding header");
      if (!equals_ignoring_case(value, "chunked")) {
        return invalid_head("Transfer-Encoding other than a lone 'chunked' is refused");
      }
      transfer_encoding = true;
    } else if (equals_ignoring_case(name, "upgrade")) {
      websocket = equals_ignoring_case(value, "websocket");
    } else if (equals_ignoring_case(name, "connection")) {
      // A token list: "keep-alive, Upgrade".
      for (size_t start = 0; start <= value.size();) {
        size_t comma = value.find(',', start);
        if (comma == std::string_view::npos) comma = value.size();
        connection_upgrade =
            connection_upgrade || equals_ignoring_case(trim(value.substr(start, comma - start)), "upgrade");
        start = comma + 1;
      }
    }
  }
  if (!host_header) return invalid_head("no Host header");
  if (!parse_authority(*host_header, head.host, head.port)) {
    return invalid_head("Host '" + printable(std::string_view(*host_header).substr(0, 255)) +
                        "' is not a domain name");
  }
  // An absolute-form target names its own host; it must be the same one.
  if (target.front() != '/' && target != "*") {
    constexpr std::string_view kScheme = "http://";
    if (target.size() <= kScheme.size() || !equals_ignoring_case(target.substr(0, kScheme.size()), kScheme)) {
      return invalid_head("request target must be a path or an http:// URL");
    }
    std::string_view authority = target.substr(kScheme.size());
    authority = authority.substr(0, authority.find_first_of("/?#"));
    std::string target_host;
    std::optional<uint16_t> target_port;
    if (!parse_authority(authority, target_host, target_port) || target_host != head.host ||
        target_port.value_or(80) != head.port.value_or(80)) {
      return invalid_head("request target names another host than Host");
    }
  }
  if (transfer_encoding && content_length) {
    return invalid_head("both Content-Length and Transfer-Encoding (the body's end would be ambiguous)");
  }
  if (transfer_encoding && version != "HTTP/1.1") return invalid_head("Transfer-Encoding needs HTTP/1.1");
  head.chunked = transfer_encoding;
  // Only a WebSocket handshake may switch protocols; any other Upgrade is
  // an ordinary request, and what follows it is checked as HTTP.
  head.upgrade = websocket && connection_upgrade;
  head.content_length = content_length.value_or(0);
  head.status = SniffStatus::complete;
  return head;
}

size_t ChunkedBodyScanner::scan(std::string_view bytes, Status& status) {
  constexpr size_t kMaxLine = 4096;
  constexpr size_t kMaxTrailers = 32 * 1024;
  auto fail = [&](const char* problem) {
    problem_ = problem;
    status = Status::invalid;
    return size_t{0};
  };
  size_t used = 0;
  status = Status::more;
  while (used < bytes.size()) {
    const char c = bytes[used];
    switch (state_) {
      case State::data: {
        const size_t n = static_cast<size_t>(std::min<uint64_t>(data_left_, bytes.size() - used));
        used += n;
        data_left_ -= n;
        if (data_left_ == 0) state_ = State::data_end;
        continue;
      }
      case State::data_end:
        line_ += c;
        ++used;
        if (line_.size() == 2) {
          if (line_ != "\r\n") return fail("chunk data not followed by CRLF");
          line_.clear();
          state_ = State::size_line;
        }
        continue;
      case State::size_line:
      case State::trailer: {
        ++used;
        if (c == '\n') {
          if (line_.empty() || line_.back() != '\r') return fail("chunked body line without CR before LF");
          line_.pop_back();
          if (state_ == State::trailer) {
            if (line_.empty()) {
              status = Status::done;
              return used;
            }
            line_.clear();
            continue;
          }
          // "<hex size>[;extension]"
          const std::string_view size_text = std::string_view(line_).substr(0, line_.find(';'));
          if (size_text.empty() || size_text.size() > 15 ||
              size_text.find_first_not_of("0123456789abcdefABCDEF") != std::string_view::npos) {
            return fail("malformed chunk size");
          }
          data_left_ = std::stoull(std::string(size_text), nullptr, 16);
          line_.clear();
          state_ = data_left_ == 0 ? State::trailer : State::data;
          continue;
        }
        if ((c < 0x20 && c != '\t' && c != '\r') || c == 0x7f)
          return fail("control byte in a chunked body line");
        if (!line_.empty() && line_.back() == '\r') return fail("CR inside a chunked body line");
        line_ += c;
        if (state_ == State::trailer && ++trailer_bytes_ > kMaxTrailers)
          return fail("chunked trailers too long");
        if (line_.size() > kMaxLine) return fail("chunk size or trailer line too long");
        continue;
      }
    }
  }
  return used;
}

}  // namespace airlock::network
