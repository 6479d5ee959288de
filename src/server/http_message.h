#pragma once

#include <boost/beast/http.hpp>

#include "server/http_server.h"

namespace airlock::server {

using RequestParser = boost::beast::http::request_parser<boost::beast::http::string_body>;

// Every request a client sends is parsed with these limits: a head of at
// most 16 KiB, a body of at most HttpServer::kMaxBodyBytes (past it: 413).
void apply_request_limits(RequestParser& parser);

// What a handler sees of a parsed request: the method, the path without its
// query, the body, and the Accept and Authorization headers.
HttpRequest to_http_request(const boost::beast::http::request<boost::beast::http::string_body>& message);
// The same without the body (a streamed one is read by its handler).
HttpRequest to_http_request(const boost::beast::http::request_header<>& head);

}  // namespace airlock::server
