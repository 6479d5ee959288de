#include "network/sniff.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace airlock::network {
namespace {

std::string u8(int value) { return std::string(1, static_cast<char>(value)); }
std::string u16(size_t value) {
  return u8(static_cast<int>(value >> 8)) + u8(static_cast<int>(value & 0xff));
}
std::string u24(size_t value) { return u8(static_cast<int>(value >> 16)) + u16(value & 0xffff); }

std::string extension(uint16_t type, const std::string& body) { return u16(type) + u16(body.size()) + body; }

std::string sni_extension(const std::vector<std::string>& names) {
  std::string list;
  for (const auto& name : names) list += u8(0) + u16(name.size()) + name;
  return extension(0, u16(list.size()) + list);
}

// A ClientHello handshake message (no record layer) with these extensions.
std::string client_hello(const std::string& extensions) {
  std::string body = u16(0x0303) + std::string(32, 'r') + u8(0) + u16(2) + u16(0x1301) + u8(1) + u8(0) +
                     u16(extensions.size()) + extensions;
  return u8(1) + u24(body.size()) + body;
}

std::string records(const std::string& handshake, size_t fragment = 16384) {
  std::string out;
  for (size_t i = 0; i < handshake.size(); i += fragment) {
    const std::string part = handshake.substr(i, fragment);
    out += u8(22) + u16(0x0301) + u16(part.size()) + part;
  }
  return out;
}

TEST(SniffClientHello, FindsTheServerName) {
  const std::string bytes = records(client_hello(extension(10, "xx") + sni_extension({"API.Example.test"})));
  ClientHello hello = sniff_client_hello(bytes);
  ASSERT_EQ(hello.status, SniffStatus::complete) << hello.problem;
  EXPECT_EQ(hello.server_name, "api.example.test");
}

TEST(SniffClientHello, IncompleteUntilTheWholeMessageIsThere) {
  const std::string bytes = records(client_hello(sni_extension({"a.test"})), 20);  // fragmented records
  for (size_t cut = 0; cut < bytes.size(); ++cut) {
    EXPECT_EQ(sniff_client_hello(bytes.substr(0, cut)).status, SniffStatus::incomplete) << cut;
  }
  EXPECT_EQ(sniff_client_hello(bytes).server_name, "a.test");
}

TEST(SniffClientHello, RefusesWhatHidesOrDoublesTheName) {
  auto problem = [](const std::string& extensions) {
    ClientHello hello = sniff_client_hello(records(client_hello(extensions)));
    EXPECT_EQ(hello.status, SniffStatus::invalid);
    return hello.problem;
  };
  EXPECT_NE(problem(extension(10, "xx")).find("no server name"), std::string::npos);
  EXPECT_NE(problem(sni_extension({"a.test", "b.test"})).find("more than one"), std::string::npos);
  EXPECT_NE(problem(sni_extension({"a.test"}) + sni_extension({"b.test"})).find("more than one"),
            std::string::npos);
  EXPECT_NE(problem(sni_extension({std::string("a\x01\xff.test")})).find("SNI 'a??.test'"),
            std::string::npos);
  EXPECT_NE(problem(sni_extension({"127.0.0.1"})).find("not a domain name"), std::string::npos);
  EXPECT_EQ(sniff_client_hello("GET / HTTP/1.1\r\n").status, SniffStatus::invalid);
  // A record header promising more than a record may hold.
  EXPECT_EQ(sniff_client_hello(u8(22) + u16(0x0301) + u16(20000)).status, SniffStatus::invalid);
}

TEST(SniffHttpRequest, ReadsHostLengthAndUpgrade) {
  const std::string request = "POST /a?b HTTP/1.1\r\nHost: Example.Test:80\r\nContent-Length: 5\r\n\r\nhello";
  HttpRequestHead head = sniff_http_request(request);
  ASSERT_EQ(head.status, SniffStatus::complete) << head.problem;
  EXPECT_EQ(head.host, "example.test");
  EXPECT_EQ(head.port, 80);
  EXPECT_EQ(head.content_length, 5u);
  EXPECT_EQ(head.head_bytes, request.size() - 5);
  EXPECT_FALSE(head.upgrade);
  EXPECT_TRUE(sniff_http_request(
                  "GET /ws HTTP/1.1\r\nHost: a.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
                  .upgrade);
  EXPECT_EQ(sniff_http_request("GET / HTTP/1.1\r\nHost: a.test\r\n").status, SniffStatus::incomplete);
  EXPECT_EQ(sniff_http_request("GET http://a.test/x HTTP/1.1\r\nHost: a.test\r\n\r\n").status,
            SniffStatus::complete);
}

TEST(SniffHttpRequest, RefusesAmbiguousRequests) {
  auto problem = [](const std::string& request) {
    HttpRequestHead head = sniff_http_request(request);
    EXPECT_EQ(head.status, SniffStatus::invalid) << request;
    return head.problem;
  };
  EXPECT_NE(problem("GET / HTTP/1.1\r\n\r\n").find("no Host"), std::string::npos);
  EXPECT_NE(problem("GET / HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n").find("more than one Host"),
            std::string::npos);
  EXPECT_NE(problem("GET http://b.test/ HTTP/1.1\r\nHost: a.test\r\n\r\n").find("another host"),
            std::string::npos);
  EXPECT_NE(problem("CONNECT b.test:443 HTTP/1.1\r\nHost: b.test\r\n\r\n").find("CONNECT"),
            std::string::npos);
  EXPECT_NE(
      problem("POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: gzip, chunked\r\n\r\n").find("lone"),
      std::string::npos);
  EXPECT_NE(
      problem("POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n")
          .find("both Content-Length and Transfer-Encoding"),
      std::string::npos);
  EXPECT_NE(problem("POST / HTTP/1.0\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n").find("HTTP/1.1"),
            std::string::npos);
  EXPECT_NE(problem("POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: "
                    "chunked\r\n\r\n")
                .find("more than one Transfer-Encoding"),
            std::string::npos);
  EXPECT_NE(problem("POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n")
                .find("conflicting"),
            std::string::npos);
  EXPECT_NE(problem("GET / HTTP/1.1\nHost: a.test\r\n\r\n").find("CRLF"), std::string::npos);
  EXPECT_NE(problem("GET / HTTP/1.1\nHost: a.test").find("CRLF"), std::string::npos);
  EXPECT_NE(problem("GET / HTTP/1.1\r\nHost: a.test\r\n x: folded\r\n\r\n").find("folded"),
            std::string::npos);
  EXPECT_NE(problem("GET / HTTP/1.1\r\nHost: 10.0.0.1\r\n\r\n").find("not a domain name"), std::string::npos);
  EXPECT_NE(problem("GET / HTTP/1.1\r\nHost: user@a.test\r\n\r\n").find("not a domain name"),
            std::string::npos);
  EXPECT_NE(problem("GET / HTTP/2.0\r\nHost: a.test\r\n\r\n").find("HTTP/1"), std::string::npos);
}

TEST(SniffClientHello, LetsEchGreaseThroughWithTheOuterName) {
  ClientHello hello =
      sniff_client_hello(records(client_hello(sni_extension({"a.test"}) + extension(0xfe0d, "ech"))));
  ASSERT_EQ(hello.status, SniffStatus::complete) << hello.problem;
  EXPECT_EQ(hello.server_name, "a.test");
}

TEST(SniffHttpRequest, OnlyAWebSocketHandshakeAsksToSwitch) {
  EXPECT_FALSE(
      sniff_http_request("GET / HTTP/1.1\r\nHost: a.test\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n")
          .upgrade);
  EXPECT_FALSE(sniff_http_request("GET / HTTP/1.1\r\nHost: a.test\r\nUpgrade: websocket\r\n\r\n").upgrade);
  EXPECT_TRUE(
      sniff_http_request(
          "GET / HTTP/1.1\r\nHost: a.test\r\nUpgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\n\r\n")
          .upgrade);
  EXPECT_EQ(sniff_http_request("GET http://a.test:8080/ HTTP/1.1\r\nHost: a.test\r\n\r\n").status,
            SniffStatus::invalid);
}

TEST(SniffHttpRequest, AcceptsALoneChunkedTransferEncoding) {
  HttpRequestHead head =
      sniff_http_request("POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: Chunked\r\n\r\n");
  ASSERT_EQ(head.status, SniffStatus::complete) << head.problem;
  EXPECT_TRUE(head.chunked);
}

TEST(ChunkedBody, FindsTheEndWhateverThePieces) {
  const std::string body = "4;ext=1\r\nabcd\r\nA\r\n0123456789\r\n0\r\nTrailer: x\r\n\r\n";
  const std::string next = "GET / HTTP/1.1\r\n";
  for (size_t piece = 1; piece <= body.size() + next.size(); ++piece) {
    ChunkedBodyScanner scanner;
    const std::string all = body + next;
    size_t consumed = 0;
    ChunkedBodyScanner::Status status = ChunkedBodyScanner::Status::more;
    for (size_t offset = 0; offset < all.size() && status == ChunkedBodyScanner::Status::more;
         offset += piece) {
      // Offer what has not been consumed yet, as the filter does.
      const std::string offered = all.substr(consumed, offset + piece - consumed);
      consumed += scanner.scan(offered, status);
    }
    EXPECT_EQ(status, ChunkedBodyScanner::Status::done) << piece;
    EXPECT_EQ(consumed, body.size()) << piece;
  }
}

TEST(ChunkedBody, RefusesAmbiguousFraming) {
  for (const char* body :
       {"x\r\n", "4\nabcd\r\n", "4\r\nabcdXY", "-1\r\n", "1234567890abcdef0\r\n", "0\r\nTrailer\n\r\n"}) {
    ChunkedBodyScanner scanner;
    ChunkedBodyScanner::Status status;
    scanner.scan(body, status);
    EXPECT_EQ(status, ChunkedBodyScanner::Status::invalid) << body;
    EXPECT_FALSE(scanner.problem().empty());
  }
}

}  // namespace
}  // namespace airlock::network
