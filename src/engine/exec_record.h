#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "engine/guest_mux.h"
#include "engine/guest_session.h"
#include "protocol/messages.h"

namespace airlock::engine {

enum class ExecState { running, exited };

// A file an exec needs in place before it starts (a one-shot run's code):
// written as root, on the exec's own stream, just before the exec.
struct ExecFile {
  std::string path;
  std::string content;
  uint32_t mode = 0644;
};

// Output of an exec, in the order it came, as a follower reads it.
struct OutputChunk {
  bool is_stdout = true;
  std::string bytes;
};

// One exec of a sandbox, on its own stream of the guest's mux: what it was
// asked, the output it produced, and how it ended. The mux's thread feeds it;
// any number of callers read it (the one that started it, `logs -f`
// followers, status requests). Its output is kept in order, up to `keep`
// bytes per stream: the exec's whole output (its limits) for one whose
// caller waits for it, the last 1 MiB for a background exec, whose older
// output is dropped (and counted) as new output comes.
class ExecRecord : public StreamHandler, public std::enable_shared_from_this<ExecRecord> {
 public:
  struct Options {
    std::string id;
    std::vector<std::string> argv;  // as the caller gave it (exec.argv may be wrapped)
    protocol::Exec exec;
    bool background = false;
    uint64_t keep_per_stream = 1 << 20;
  };
  explicit ExecRecord(Options options);

  const std::string& id() const { return options_.id; }
  const protocol::Exec& exec() const { return options_.exec; }
  const std::vector<std::string>& argv() const { return options_.argv; }
  bool background() const { return options_.background; }
  uint32_t stream() const { return stream_; }

  // Sends the exec (after `file`, if any; then `stdin_data`, and a close
  // unless `keep_stdin_open`) on a new stream of `mux`, which it closes when
  // the exec ends (the mux then holds nothing of it). The file, the exec
  // and what of the stdin fits its window go as one piece; the rest of the
  // stdin as the guest acknowledges. Never waits for the guest.
  void start(const std::shared_ptr<GuestMux>& mux, const ExecFile* file, const std::string& stdin_data,
             bool keep_stdin_open);

  void on_frame(const protocol::Frame& frame) override;
  void on_broken(const std::string& reason) override;

  struct Update {
    std::vector<OutputChunk> chunks;
    uint64_t next = 0;     // where to read from next time
    uint64_t dropped = 0;  // chunks between `from` and the oldest kept that are gone
    bool ended = false;    // nothing more will come
  };
  // The output from chunk number `from` on. Waits up to `wait` for some if
  // there is none yet and the exec has not ended.
  Update read(uint64_t from, std::chrono::milliseconds wait);

  // Waits until it ends or `until`; true if it ended.
  bool wait_until_ended(SteadyClock::time_point until);
  ExecState state() const;

  // Asks the guest to kill its processes; the outcome says why.
  enum class StopCause { cancelled, host_timeout, sandbox_stopped };
  void stop(GuestMux& mux, StopCause cause);
  // Marks it ended with `failure` if the guest never reported (it was told
  // to stop and the grace passed, or the sandbox is being torn down).
  void abandon(const std::string& failure);
  // Delivers a signal to its program. Error(conflict) once it has ended.
  void signal(GuestMux& mux, int number);
  // A tty exec's new terminal size. Error(conflict) once it has ended.
  void resize(GuestMux& mux, uint16_t rows, uint16_t cols);
  // More stdin, or its end; Error(conflict) once the exec ended or its
  // stdin is closed, Error(vm) if the guest stopped taking it.
  void write_stdin(GuestMux& mux, std::string_view bytes, bool close, SteadyClock::time_point deadline);
  // Waits until the stdin window has room, or the exec ended, or `until`;
  // false only at `until`.
  bool wait_for_stdin_room(SteadyClock::time_point until);

  // Its outcome so far (its exit report once ended), with the output kept.
  ExecOutcome outcome() const;
  SteadyClock::time_point started() const { return started_; }
  int64_t started_at_ms() const { return started_at_ms_; }
  std::optional<int64_t> ended_at_ms() const;
  // Output per stream that was dropped to keep the last `keep_per_stream`.
  uint64_t dropped_bytes(bool is_stdout) const;
  // Keeps only the last `keep` bytes of each stream (for a finished exec kept to be looked at).
  void trim(uint64_t keep);

 private:
  void append(bool is_stdout, std::string_view bytes);
  void handle_frame_locked(const protocol::Frame& frame);
  // Once ended: its stream is closed on the mux, if that is still there.
  void close_stream();
  void end_locked();
  void drop_front_locked();
  // Frames of `data` the stdin window has room for now; returns how much of it they carry.
  size_t append_stdin_frames_locked(std::string_view data, std::string& frames);
  // The close, once nothing given at the start waits any more and it was asked for.
  void append_close_if_due_locked(std::string& frames);
  // Frames of the stdin given at the start that the window has room for now (and then its close).
  std::string next_stdin_locked();
  void send_more_stdin_locked();
  bool stdin_has_room_locked() const;

  Options options_;
  uint32_t stream_ = 0;
  std::weak_ptr<GuestMux> mux_;
  SteadyClock::time_point started_;
  int64_t started_at_ms_ = 0;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<OutputChunk> chunks_;
  uint64_t first_chunk_ = 0;  // number of chunks_.front()
  // Chunks numbered below this were handed to a reader: new output never
  // joins them, so what a reader got stays what it got.
  uint64_t sealed_ = 0;
  uint64_t kept_[2] = {0, 0};      // bytes in chunks_ per stream (0: stdout)
  uint64_t received_[2] = {0, 0};  // bytes the guest sent per stream, within the limits
  uint64_t dropped_[2] = {0, 0};
  uint64_t stdin_sent_ = 0;
  uint64_t stdin_acked_ = 0;
  bool stdin_closed_ = false;  // to callers: no more may be written
  std::string pending_stdin_;  // given at the start and not sent yet, from pending_offset_ on
  size_t pending_offset_ = 0;
  bool close_after_pending_ = false;
  ExecOutcome outcome_;
  bool ended_ = false;
  std::optional<int64_t> ended_at_ms_;
  std::optional<StopCause> stop_cause_;
};

std::string_view to_string(ExecState state);

}  // namespace airlock::engine
