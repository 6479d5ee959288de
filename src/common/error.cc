#include "common/error.h"

#include <cstring>

namespace airlock {

std::string_view to_string(ErrorCode code) {
  switch (code) {
    case ErrorCode::invalid_argument: return "invalid_argument";
    case ErrorCode::not_found: return "not_found";
    case ErrorCode::io: return "io";
    case ErrorCode::protocol: return "protocol";
    case ErrorCode::vm: return "vm";
    case ErrorCode::unavailable: return "unavailable";
    case ErrorCode::cancelled: return "cancelled";
    case ErrorCode::permission_denied: return "permission_denied";
    case ErrorCode::conflict: return "conflict";
    case ErrorCode::overloaded: return "overloaded";
    case ErrorCode::too_large: return "too_large";
    case ErrorCode::no_space: return "no_space";
    case ErrorCode::internal: return "internal";
  }
  return "internal";
}

void throw_errno(std::string_view op, std::string_view arg, int err) {
  std::string message(op);
  if (!arg.empty()) {
    message += "(\"";
    message += arg;
    message += "\")";
  }
  message += ": ";
  message += std::strerror(err);
  throw Error(ErrorCode::io, message);
}

}  // namespace airlock
