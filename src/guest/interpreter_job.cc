#include "guest/interpreter_job.h"

#include <limits.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

namespace airlock::guest {

namespace {

// A word bash reads back byte for byte from $'...': only printable ASCII
// is left as it is, so the text's length in bytes is its length in the
// characters `read -N` counts in any locale.
void append_shell_word(std::string& out, std::string_view word) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += "$'";
  for (unsigned char c : word) {
    if (c == '\'' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    }
  }
  out += '\'';
}

void append_shell_array(std::string& out, const char* name, const std::vector<std::string>& words,
                        size_t from) {
  out += name;
  out += "=(";
  for (size_t i = from; i < words.size(); ++i) {
    if (i > from) out += ' ';
    append_shell_word(out, words[i]);
  }
  out += ")\n";
}

}  // namespace

// What a prestarted interpreter needs to run a program: its argv (without
// the interpreter), the environment and the directory, and for Python the
// code's path. A "shell" job is bash assignments the prestarted bash evals
// (its script's path is the one it was started with), after a line with
// their length: bash reads a counted block in large reads, but a line one
// byte per read(2) from a socket.
std::string job_line(const protocol::Exec& request, bool warm, const std::string& format) {
  if (format == "shell") {
    std::string words;
    if (warm) words += "__airlock_warm=1\n";
    append_shell_array(words, "__airlock_env", request.env, 0);
    append_shell_array(words, "__airlock_args", request.argv, 2);
    words += "__airlock_cwd=";
    append_shell_word(words, request.cwd);
    // What bash would set HOSTNAME to at its start (a copy of a sandbox
    // gets a new one), one syscall here rather than a file read there.
    char hostname[HOST_NAME_MAX + 1] = {};
    ::gethostname(hostname, sizeof hostname - 1);
    words += "\n__airlock_hostname=";
    append_shell_word(words, hostname);
    words += "\n";
    return std::to_string(words.size()) + "\n" + words;
  }
  nlohmann::json job = {{"path", request.argv.back()},
                        {"argv", std::vector<std::string>(request.argv.begin() + 1, request.argv.end())},
                        {"env", request.env},
                        {"cwd", request.cwd}};
  if (warm) job["warm"] = true;
  return job.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

std::string job_code_path(const protocol::Exec& request, const std::string& format) {
  return format == "shell" && request.argv.size() > 1 ? request.argv[1] : request.argv.back();
}

}  // namespace airlock::guest
