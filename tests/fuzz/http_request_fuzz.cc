// libFuzzer target: what a client's bytes meet first in airlockd, Beast's
// HTTP parser with our limits, then our view of the request and, for a run,
// the body parser. Any input must end in a request, a parse error or
// Error(invalid_argument): never a crash, a hang or memory past the limits.

#include <boost/asio/buffer.hpp>
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "common/error.h"
#include "server/http_message.h"
#include "server/request_parsing.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace airlock::server;
  RequestParser parser;
  apply_request_limits(parser);
  boost::beast::error_code error;
  // Fed in uneven pieces, as a socket would deliver them; the parser keeps
  // what it cannot use yet, so the unconsumed rest is offered again.
  size_t offset = 0;
  size_t piece = 1;
  std::string pending;
  while (offset < size && !parser.is_done()) {
    const size_t take = std::min(piece, size - offset);
    pending.append(reinterpret_cast<const char*>(data) + offset, take);
    offset += take;
    piece = piece * 2 + 1;
    const size_t used = parser.put(boost::asio::buffer(pending), error);
    if (error == boost::beast::http::error::need_more) {
      error = {};
    } else if (error) {
      return 0;
    }
    pending.erase(0, used);
  }
  if (!parser.is_done()) return 0;
  HttpRequest request = to_http_request(parser.get());
  if (request.body.size() > HttpServer::kMaxBodyBytes) std::abort();
  if (request.target.find('?') != std::string::npos) std::abort();
  if (request.target == "/v1/run") {
    try {
      parse_run_request(request.body);
    } catch (const airlock::Error& e) {
      if (e.code() != airlock::ErrorCode::invalid_argument) std::abort();
    }
  }
  return 0;
}
