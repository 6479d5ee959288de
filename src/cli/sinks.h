#pragma once

#include <string_view>

#include "common/error.h"
#include "common/io.h"
#include "engine/guest_session.h"

namespace airlock::cli {

// Streams the program's output to our own stdout/stderr, byte for byte. A
// reader that goes away (`| head -1`) stops the copying, not the run.
class TerminalSink final : public engine::OutputSink {
 public:
  void on_stdout(std::string_view bytes) override { copy(1, bytes, stdout_open_); }
  void on_stderr(std::string_view bytes) override { copy(2, bytes, stderr_open_); }

 private:
  static void copy(int fd, std::string_view bytes, bool& open) {
    if (!open) return;
    try {
      write_all(fd, bytes);
    } catch (const Error&) {
      open = false;
    }
  }
  bool stdout_open_ = true;
  bool stderr_open_ = true;
};

// Output of a --json run through the daemon: the result carries it anyway.
class CollectingSink final : public engine::OutputSink {
 public:
  void on_stdout(std::string_view) override {}
  void on_stderr(std::string_view) override {}
};

}  // namespace airlock::cli
