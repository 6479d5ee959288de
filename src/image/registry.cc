#include "image/registry.h"

#include <sys/stat.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>

#include "common/error.h"
#include "common/io.h"
#include "image/oci_source.h"

namespace airlock::image {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
namespace ssl = net::ssl;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr uint64_t kMaxDocumentBytes = 4 << 20;
constexpr int kMaxRedirects = 5;
constexpr std::chrono::seconds kDocumentDeadline{60};  // a manifest, an index, a token
constexpr const char* kManifestTypes =
    "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, "
    "application/vnd.docker.distribution.manifest.list.v2+json, "
    "application/vnd.docker.distribution.manifest.v2+json";

struct Url {
  bool tls = true;
  std::string host;  // without brackets
  std::string port;
  std::string target;
  std::string authority() const {
    const bool v6 = host.find(':') != std::string::npos;
    return (v6 ? "[" + host + "]" : host) +
           ((port == "443" && tls) || (port == "80" && !tls) ? "" : ":" + port);
  }
};

Url parse_url(const std::string& text) {
  Url url;
  std::string rest;
  if (text.rfind("https://", 0) == 0) {
    rest = text.substr(8);
  } else if (text.rfind("http://", 0) == 0) {
    url.tls = false;
    rest = text.substr(7);
  } else {
    throw Error(ErrorCode::invalid_argument, "'" + text + "' is not an http(s) URL");
  }
  const size_t slash = rest.find('/');
  std::string authority = rest.substr(0, slash);
  url.target = slash == std::string::npos ? "/" : rest.substr(slash);
  url.port = url.tls ? "443" : "80";
  if (!authority.empty() && authority.front() == '[') {
    const size_t close = authority.find(']');
    url.host = authority.substr(1, close - 1);
    if (close + 1 < authority.size() && authority[close + 1] == ':') url.port = authority.substr(close + 2);
  } else {
    const size_t colon = authority.rfind(':');
    url.host = authority.substr(0, colon);
    if (colon != std::string::npos) url.port = authority.substr(colon + 1);
  }
  if (url.host.empty()) throw Error(ErrorCode::invalid_argument, "'" + text + "' names no host");
  return url;
}

bool is_loopback(const std::string& host) {
  if (host == "localhost") return true;
  boost::system::error_code error;
  const auto address = net::ip::make_address(host, error);
  return !error && address.is_loopback();
}

// `key="value"` parameters of a WWW-Authenticate challenge.
std::optional<std::string> challenge_parameter(const std::string& header, const std::string& key) {
  const size_t at = header.find(key + "=\"");
  if (at == std::string::npos) return std::nullopt;
  const size_t start = at + key.size() + 2;
  return header.substr(start, header.find('"', start) - start);
}

std::string url_encoded(const std::string& text) {
  static constexpr char kDigits[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += {'%', kDigits[c >> 4], kDigits[c & 15]};
    }
  }
  return out;
}

struct Reply {
  int status = 0;
  std::string content_type;
  std::string location;
  std::string challenge;
  std::string body;  // unless it went to a file
};

// Runs one asynchronous operation to its end: synchronous Beast calls
// would block past the stream's deadline, which only asynchronous ones obey.
template <typename Start>
void await(net::io_context& io, Start start) {
  beast::error_code error;
  start([&error](beast::error_code e, auto&&...) { error = e; });
  io.restart();
  io.run();
  if (error) throw boost::system::system_error(error);
}

// One GET, its body into `file` (when given) or the reply, at most `limit`
// bytes; the stream's deadline is already set.
template <typename Stream>
Reply exchange(net::io_context& io, Stream& stream, const Url& url, const std::string& accept,
               const std::string& authorization, const std::string& file, uint64_t limit) {
  http::request<http::empty_body> request{http::verb::get, url.target, 11};
  request.set(http::field::host, url.authority());
  request.set(http::field::user_agent, "airlock");
  if (!accept.empty()) request.set(http::field::accept, accept);
  if (!authorization.empty()) request.set(http::field::authorization, authorization);
  await(io, [&](auto done) { http::async_write(stream, request, done); });
  beast::flat_buffer buffer;
  Reply reply;
  auto fill = [&](auto& response) {
    reply.status = static_cast<int>(response.result_int());
    reply.content_type = std::string(response[http::field::content_type]);
    reply.location = std::string(response[http::field::location]);
    reply.challenge = std::string(response[http::field::www_authenticate]);
  };
  http::response_parser<http::empty_body> head;
  head.body_limit(limit);
  await(io, [&](auto done) { http::async_read_header(stream, buffer, head, done); });
  if (!file.empty() && head.get().result_int() == 200) {
    http::response_parser<http::file_body> parser(std::move(head));
    beast::error_code ec;
    parser.get().body().open(file.c_str(), beast::file_mode::write, ec);
    if (ec) throw Error(ErrorCode::io, "cannot write " + file + ": " + ec.message());
    await(io, [&](auto done) { http::async_read(stream, buffer, parser, done); });
    fill(parser.get());
  } else {
    // A refusal or a document: a few MiB at most. The header's limit was the
    // blob's, and Beast checks a Content-Length only against that one.
    const uint64_t cap = std::min<uint64_t>(limit, kMaxDocumentBytes);
    if (head.content_length() && *head.content_length() > cap) {
      throw Error(ErrorCode::unavailable, "registry answered " + std::to_string(head.get().result_int()) +
                                              " for " + url.authority() + url.target + " with " +
                                              std::to_string(*head.content_length()) + " bytes; refused");
    }
    http::response_parser<http::string_body> parser(std::move(head));
    parser.body_limit(cap);
    await(io, [&](auto done) { http::async_read(stream, buffer, parser, done); });
    fill(parser.get());
    reply.body = std::move(parser.get().body());
  }
  return reply;
}

class Registry {
 public:
  Registry(ImageReference reference, const PullOptions& options)
      : reference_(std::move(reference)), options_(options) {
    const Url probe = parse_url("https://" + reference_.registry + "/");
    tls_ = !(options_.insecure || is_loopback(probe.host));
    tls_context_.set_default_verify_paths();
    tls_context_.set_verify_mode(ssl::verify_peer);
  }

  std::string api(const std::string& path) const {
    return (tls_ ? "https://" : "http://") + reference_.registry + "/v2/" + reference_.repository + path;
  }

  // GET with the registry's token, following its redirects: the token only
  // to the registry's own origin (a blob store's URL gets none), never from
  // HTTPS down to plain HTTP unless the pull is --insecure.
  Reply get(const std::string& start, const std::string& accept, const std::string& file, uint64_t limit,
            std::chrono::seconds deadline) {
    std::string current = start;
    const Url origin = parse_url(start);
    auto same_origin = [&](const Url& url) {
      return url.tls == origin.tls && url.host == origin.host && url.port == origin.port;
    };
    for (int hop = 0; hop <= kMaxRedirects; ++hop) {
      const Url url = parse_url(current);
      if (origin.tls && !url.tls && !options_.insecure) {
        throw Error(ErrorCode::unavailable, "registry " + reference_.registry + " redirected " + start +
                                                " to plain HTTP (" + current +
                                                "); refused without --insecure");
      }
      const std::string authorization = same_origin(url) && !token_.empty() ? "Bearer " + token_ : "";
      Reply reply = fetch(url, accept, authorization, file, limit, deadline);
      if (reply.status == 401 && token_.empty() && same_origin(url) && hop == 0) {
        authenticate(reply.challenge);
        reply = fetch(url, accept, "Bearer " + token_, file, limit, deadline);
      }
      if (reply.status >= 300 && reply.status < 400 && !reply.location.empty()) {
        if (reply.location.front() == '/') {
          current = (url.tls ? "https://" : "http://") + url.authority() + reply.location;
        } else if (reply.location.rfind("http://", 0) == 0 || reply.location.rfind("https://", 0) == 0) {
          current = reply.location;
        } else {
          throw Error(ErrorCode::unavailable, "registry " + reference_.registry + " redirected " + start +
                                                  " to '" + reply.location +
                                                  "', which airlock does not follow");
        }
        continue;
      }
      return reply;
    }
    throw Error(ErrorCode::unavailable, "registry " + reference_.registry + " redirected more than " +
                                            std::to_string(kMaxRedirects) + " times for " + start);
  }

  [[noreturn]] void fail(const Reply& reply, const std::string& what) const {
    if (reply.status == 404) {
      throw Error(ErrorCode::not_found, "registry " + reference_.registry + " has no " + what);
    }
    throw Error(ErrorCode::unavailable, "registry " + reference_.registry + " answered " +
                                            std::to_string(reply.status) + " for " + what + ": " +
                                            reply.body.substr(0, 300));
  }

 private:
  Reply fetch(const Url& url, const std::string& accept, const std::string& authorization,
              const std::string& file, uint64_t limit, std::chrono::seconds deadline) {
    try {
      net::ip::tcp::resolver resolver(io_);
      const auto endpoints = resolver.resolve(url.host, url.port);
      if (!url.tls) {
        beast::tcp_stream stream(io_);
        stream.expires_after(deadline);
        await(io_, [&](auto done) { stream.async_connect(endpoints, done); });
        return exchange(io_, stream, url, accept, authorization, file, limit);
      }
      beast::ssl_stream<beast::tcp_stream> stream(io_, tls_context_);
      beast::get_lowest_layer(stream).expires_after(deadline);
      if (!SSL_set_tlsext_host_name(stream.native_handle(), url.host.c_str())) {
        throw Error(ErrorCode::unavailable, "cannot name " + url.host + " in the TLS handshake");
      }
      stream.set_verify_callback(ssl::host_name_verification(url.host));
      await(io_, [&](auto done) { beast::get_lowest_layer(stream).async_connect(endpoints, done); });
      await(io_, [&](auto done) { stream.async_handshake(ssl::stream_base::client, done); });
      return exchange(io_, stream, url, accept, authorization, file, limit);
    } catch (const boost::system::system_error& e) {
      const bool late = e.code() == beast::error::timeout;
      throw Error(
          ErrorCode::unavailable,
          "cannot fetch " + url.authority() + url.target + " from registry " + reference_.registry + ": " +
              (late ? "no answer within " + std::to_string(deadline.count()) + " s" : e.code().message()));
    }
  }

  void authenticate(const std::string& challenge) {
    auto realm = challenge_parameter(challenge, "realm");
    if (challenge.rfind("Bearer ", 0) != 0 || !realm) {
      throw Error(ErrorCode::permission_denied,
                  "registry " + reference_.registry + " wants credentials; airlock pulls public images only");
    }
    if (tls_ && realm->rfind("http://", 0) == 0 && !options_.insecure) {
      throw Error(ErrorCode::unavailable, "registry " + reference_.registry +
                                              " sends for its token to plain HTTP (" + *realm +
                                              "); refused without --insecure");
    }
    std::string url = *realm + (realm->find('?') == std::string::npos ? "?" : "&");
    if (auto service = challenge_parameter(challenge, "service"))
      url += "service=" + url_encoded(*service) + "&";
    url += "scope=" + url_encoded(challenge_parameter(challenge, "scope")
                                      .value_or("repository:" + reference_.repository + ":pull"));
    Reply reply = fetch(parse_url(url), "application/json", "", "", kMaxDocumentBytes, kDocumentDeadline);
    json answer = json::parse(reply.body, nullptr, false);
    if (reply.status != 200 || !answer.is_object()) {
      throw Error(
          ErrorCode::permission_denied,
          "registry " + reference_.registry + "'s token service answered " + std::to_string(reply.status));
    }
    token_ = answer.value("token", answer.value("access_token", ""));
    if (token_.empty()) throw Error(ErrorCode::permission_denied, "the token service gave no token");
  }

  ImageReference reference_;
  PullOptions options_;
  bool tls_ = true;
  net::io_context io_;
  ssl::context tls_context_{ssl::context::tls_client};
  std::string token_;
};

std::string media_type_of(const Reply& reply, const json& document) {
  std::string type = reply.content_type.substr(0, reply.content_type.find(';'));
  if (document.is_object() && document.contains("mediaType") && document["mediaType"].is_string()) {
    type = document["mediaType"].get<std::string>();
  }
  return type;
}

// A manifest or index as fetched: kept as a blob under its digest.
struct Document {
  std::string digest, media_type;
  json content;
  size_t size = 0;
};

// `digest` when it is sha256:<64 hex digits>: a digest names a file here.
std::string checked_digest(const std::string& digest, const std::string& what) {
  if (digest.size() != 71 || digest.rfind("sha256:", 0) != 0 ||
      digest.find_first_not_of("0123456789abcdef", 7) != std::string::npos) {
    throw Error(ErrorCode::invalid_argument,
                what + " has digest '" + digest + "', not sha256:<64 hex digits>");
  }
  return digest;
}

Document fetch_document(Registry& registry, const std::string& directory, const std::string& reference,
                        const std::string& what) {
  Reply reply = registry.get(registry.api("/manifests/" + reference), kManifestTypes, "", kMaxDocumentBytes,
                             kDocumentDeadline);
  if (reply.status != 200) registry.fail(reply, what);
  Document document;
  document.digest = sha256_of(reply.body);
  if (reference.rfind("sha256:", 0) == 0 && reference != document.digest) {
    throw Error(ErrorCode::invalid_argument,
                what + " came with digest " + document.digest + ", not " + reference);
  }
  document.content = json::parse(reply.body, nullptr, false);
  if (!document.content.is_object()) throw Error(ErrorCode::invalid_argument, what + " is not a JSON object");
  document.media_type = media_type_of(reply, document.content);
  document.size = reply.body.size();
  write_file(directory + "/blobs/sha256/" + document.digest.substr(7), reply.body);
  return document;
}

void fetch_blob(Registry& registry, const std::string& directory, const json& descriptor, uint64_t limit,
                std::chrono::seconds timeout, const std::string& what) {
  if (!descriptor.is_object() || !descriptor.contains("digest") || !descriptor["digest"].is_string()) {
    throw Error(ErrorCode::invalid_argument, "the manifest has a " + what + " without a digest");
  }
  const std::string digest =
      checked_digest(descriptor["digest"].get<std::string>(), "the manifest's " + what);
  if (!descriptor.contains("size") || !descriptor["size"].is_number_unsigned()) {
    throw Error(ErrorCode::invalid_argument, "the manifest's " + what + " " + digest + " has no size");
  }
  const uint64_t size = descriptor["size"].get<uint64_t>();
  if (size > limit) {
    throw Error(ErrorCode::too_large, what + " " + digest + " is " + std::to_string(size >> 20) +
                                          " MiB, past the limit of " + std::to_string(limit >> 20) + " MiB");
  }
  const std::string path = directory + "/blobs/sha256/" + digest.substr(7);
  // No more than it says it is, in a time its size allows (1 MiB/s at least).
  const std::chrono::seconds deadline = timeout + std::chrono::seconds(size >> 20);
  Reply reply = registry.get(registry.api("/blobs/" + digest), "", path + ".partial", size, deadline);
  if (reply.status != 200) registry.fail(reply, what + " " + digest);
  const std::string actual = sha256_of_file(path + ".partial");
  if (actual != digest) {
    throw Error(ErrorCode::invalid_argument,
                what + " " + digest + " is damaged: its contents hash to " + actual);
  }
  fs::rename(path + ".partial", path);
}

}  // namespace

std::string ImageReference::text() const {
  return registry + "/" + repository + (reference.rfind("sha256:", 0) == 0 ? "@" : ":") + reference;
}

ImageReference parse_image_reference(const std::string& text) {
  auto bad = [&](const std::string& why) {
    return Error(ErrorCode::invalid_argument, "image reference '" + text + "' is invalid: " + why);
  };
  if (text.empty() || text.find_first_of(" \t\n\"\\") != std::string::npos) throw bad("empty or has spaces");
  ImageReference reference;
  std::string rest = text;
  const size_t at = rest.find('@');
  if (at != std::string::npos) {
    reference.reference = rest.substr(at + 1);
    rest = rest.substr(0, at);
    if (reference.reference.size() != 71 || reference.reference.rfind("sha256:", 0) != 0) {
      throw bad("a digest is sha256:<64 hex digits>");
    }
  }
  const size_t slash = rest.find('/');
  const std::string first = rest.substr(0, slash);
  if (slash != std::string::npos && (first.find('.') != std::string::npos ||
                                     first.find(':') != std::string::npos || first == "localhost")) {
    reference.registry = first;
    rest = rest.substr(slash + 1);
  } else {
    reference.registry = "registry-1.docker.io";
    if (rest.find('/') == std::string::npos) rest = "library/" + rest;
  }
  const size_t colon = rest.rfind(':');
  if (colon != std::string::npos && rest.find('/', colon) == std::string::npos) {
    if (at != std::string::npos) throw bad("give a tag or a digest, not both");
    reference.reference = rest.substr(colon + 1);
    rest = rest.substr(0, colon);
  }
  if (reference.reference.empty()) reference.reference = "latest";
  reference.repository = rest;
  if (rest.empty() || rest.front() == '/' || rest.back() == '/' || rest.find("//") != std::string::npos ||
      rest.find("..") != std::string::npos ||
      rest.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789._-/") != std::string::npos) {
    throw bad("a repository is lower-case letters, digits, '.', '_', '-' and '/'");
  }
  if (reference.reference.rfind("sha256:", 0) != 0 &&
      reference.reference.find_first_not_of(
          "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != std::string::npos) {
    throw bad("a tag is letters, digits, '.', '_' and '-'");
  }
  return reference;
}

namespace {

void pull_into(const ImageReference& reference, const std::string& directory, const PullOptions& options) {
  fs::create_directories(directory + "/blobs/sha256");
  write_file(directory + "/oci-layout", R"({"imageLayoutVersion":"1.0.0"})");
  Registry registry(reference, options);
  Document top = fetch_document(registry, directory, reference.reference,
                                reference.repository + ":" + reference.reference);
  Document manifest = top;
  json platform;
  if (top.content.contains("manifests")) {
    // An index: the linux/amd64 manifest, the same choice an import makes.
    bool found = false;
    for (const json& entry : top.content["manifests"]) {
      if (!entry.is_object()) continue;
      // No platform: for any (as an import reads an index).
      const json p = entry.contains("platform") && entry["platform"].is_object() ? entry["platform"] : json();
      if (!p.is_null() && (p.value("os", "") != "linux" || p.value("architecture", "") != "amd64")) continue;
      const std::string digest = checked_digest(
          entry.contains("digest") && entry["digest"].is_string() ? entry["digest"].get<std::string>() : "",
          "an entry of the index");
      manifest = fetch_document(registry, directory, digest, "manifest " + digest);
      platform = p;
      found = true;
      break;
    }
    if (!found) throw Error(ErrorCode::invalid_argument, reference.text() + " has no linux/amd64 image");
  }
  if (!manifest.content.contains("layers") || !manifest.content["layers"].is_array()) {
    throw Error(ErrorCode::invalid_argument, reference.text() + " is not an image manifest (no layers)");
  }
  fetch_blob(registry, directory, manifest.content.value("config", json()), kMaxDocumentBytes,
             options.timeout, "config");
  uint64_t left = options.limits.max_bytes;  // for all layers together
  for (const json& layer : manifest.content["layers"]) {
    fetch_blob(registry, directory, layer, left, options.timeout, "layer");
    left -= layer["size"].get<uint64_t>();
  }
  json descriptor = {
      {"mediaType", manifest.media_type}, {"digest", manifest.digest}, {"size", manifest.size}};
  if (!platform.is_null()) descriptor["platform"] = platform;
  write_file(directory + "/index.json", json{{"schemaVersion", 2}, {"manifests", {descriptor}}}.dump());
}

}  // namespace

void pull_to_layout(const ImageReference& reference, const std::string& directory,
                    const PullOptions& options) {
  try {
    pull_into(reference, directory, options);
  } catch (const json::exception& e) {
    // A field of the wrong type in what the registry served.
    throw Error(ErrorCode::invalid_argument,
                reference.text() + " has a malformed manifest or index: " + e.what());
  }
}

}  // namespace airlock::image
