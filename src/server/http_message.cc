#include "server/http_message.h"

#include <cctype>

#include "common/error.h"

namespace airlock::server {

namespace http = boost::beast::http;

void apply_request_limits(RequestParser& parser) {
  parser.header_limit(16 * 1024);
  parser.body_limit(HttpServer::kMaxBodyBytes);
}

HttpRequest to_http_request(const http::request<http::string_body>& message) {
  HttpRequest request = to_http_request(static_cast<const http::request_header<>&>(message));
  request.body = message.body();
  return request;
}

HttpRequest to_http_request(const http::request_header<>& message) {
  HttpRequest request;
  request.method = std::string(message.method_string());
  request.target = std::string(message.target());
  if (auto query = request.target.find('?'); query != std::string::npos) {
    request.query = request.target.substr(query + 1);
    request.target.resize(query);
  }
  request.accept = std::string(message[http::field::accept]);
  request.authorization = std::string(message[http::field::authorization]);
  return request;
}

std::optional<std::string> query_parameter(const std::string& query, const std::string& name) {
  size_t start = 0;
  while (start <= query.size()) {
    size_t end = query.find('&', start);
    if (end == std::string::npos) end = query.size();
    const std::string pair = query.substr(start, end - start);
    const size_t equals = pair.find('=');
    if (pair.substr(0, equals) == name) {
      const std::string raw = equals == std::string::npos ? "" : pair.substr(equals + 1);
      std::string value;
      for (size_t i = 0; i < raw.size(); ++i) {
        if (raw[i] == '+') {
          value += ' ';
        } else if (raw[i] != '%') {
          value += raw[i];
        } else if (i + 2 < raw.size() && std::isxdigit(static_cast<unsigned char>(raw[i + 1])) &&
                   std::isxdigit(static_cast<unsigned char>(raw[i + 2]))) {
          value += static_cast<char>(std::stoi(raw.substr(i + 1, 2), nullptr, 16));
          i += 2;
        } else {
          throw Error(ErrorCode::invalid_argument, "query parameter '" + name + "' has a malformed %-escape");
        }
      }
      return value;
    }
    start = end + 1;
  }
  return std::nullopt;
}

}  // namespace airlock::server
