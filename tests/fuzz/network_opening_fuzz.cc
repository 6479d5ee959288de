// libFuzzer target: what the egress filter reads from a guest before it
// decides (TLS ClientHello, HTTP request heads) and the policy texts it is
// configured with. Any input must end in a verdict: never a crash, a hang, a
// read past the input or a verdict that contradicts itself.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "common/error.h"
#include "network/policy.h"
#include "network/sniff.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace airlock::network;
  if (size == 0) return 0;
  const std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 4) {
    case 0: {
      ClientHello hello = sniff_client_hello(input);
      if (hello.status == SniffStatus::complete && canonical_domain(hello.server_name) != hello.server_name) {
        std::abort();  // a name the filter compares must already be canonical
      }
      break;
    }
    case 1: {
      HttpRequestHead head = sniff_http_request(input);
      if (head.status == SniffStatus::complete &&
          (head.head_bytes > input.size() || canonical_domain(head.host) != head.host)) {
        std::abort();
      }
      break;
    }
    case 3: {
      // A chunked body offered in pieces, as the filter offers it.
      ChunkedBodyScanner scanner;
      ChunkedBodyScanner::Status status = ChunkedBodyScanner::Status::more;
      size_t consumed = 0, offered_to = 0, piece = 1;
      while (status == ChunkedBodyScanner::Status::more && offered_to < input.size()) {
        offered_to = std::min(input.size(), offered_to + piece);
        piece = piece * 2 + 1;
        const size_t used = scanner.scan(input.substr(consumed, offered_to - consumed), status);
        if (used > offered_to - consumed) std::abort();
        consumed += used;
      }
      break;
    }
    default:
      try {
        NetworkPolicy policy = parse_network_policy(input);
        // The canonical spelling must parse back to itself.
        if (parse_network_policy(policy.to_string()).to_string() != policy.to_string()) std::abort();
      } catch (const airlock::Error&) {
      }
      try {
        parse_resolver_entry(input);
      } catch (const airlock::Error&) {
      }
  }
  return 0;
}
