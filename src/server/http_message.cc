#include "server/http_message.h"

namespace airlock::server {

namespace http = boost::beast::http;

void apply_request_limits(RequestParser& parser) {
  parser.header_limit(16 * 1024);
  parser.body_limit(HttpServer::kMaxBodyBytes);
}

HttpRequest to_http_request(const http::request<http::string_body>& message) {
  HttpRequest request;
  request.method = std::string(message.method_string());
  request.target = std::string(message.target());
  if (auto query = request.target.find('?'); query != std::string::npos) request.target.resize(query);
  request.body = message.body();
  request.accept = std::string(message[http::field::accept]);
  request.authorization = std::string(message[http::field::authorization]);
  return request;
}

}  // namespace airlock::server
