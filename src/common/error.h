#pragma once

#include <cerrno>
#include <stdexcept>
#include <string>
#include <string_view>

namespace airlock {

// Every failure in Airlock is an Error carrying one of these codes; callers
// branch on the code, users read the message. Run outcomes (a program that
// exits 1, times out, ...) are not errors: they are RunStatus values.
enum class ErrorCode {
  invalid_argument,   // the caller asked for something malformed or out of range
  not_found,          // a named file, image or resource does not exist
  io,                 // an operating-system call failed
  protocol,           // the guest sent bytes that break the wire protocol
  vm,                 // the VM failed to start, crashed or never answered
  unavailable,        // a required facility (accelerator, image) cannot be used
  cancelled,          // the caller cancelled the operation
  permission_denied,  // the caller may not do this (e.g. only the daemon's operator may)
  conflict,           // not in the thing's current state (a busy or stopped sandbox); the message says which
  overloaded,         // a quota or budget is full now; trying again later may work
  too_large,          // more bytes than allowed (a file, a body)
  no_space,           // the guest's disk (or the sandbox's share of it) is full
  internal,           // a bug in Airlock
};

std::string_view to_string(ErrorCode code);

class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
  ErrorCode code() const { return code_; }

 private:
  ErrorCode code_;
};

// Throws ErrorCode::io as `op("arg"): strerror(err)`, the form every system
// call failure takes so a user can tell which call on which path failed.
[[noreturn]] void throw_errno(std::string_view op, std::string_view arg = {}, int err = errno);

}  // namespace airlock
