#include "engine/exec_record.h"

#include <algorithm>

#include "common/error.h"

namespace airlock::engine {

using protocol::FrameType;

namespace {

// Stdin bytes in flight before the guest acknowledges them.
constexpr uint64_t kStdinWindow = 1 << 20;
// Small writes are joined into chunks of up to this much, and a follower
// lagging more than this many chunks behind loses the oldest.
constexpr size_t kChunkJoin = 64 * 1024;
constexpr size_t kMaxChunks = 8192;

int64_t unix_now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

std::string_view to_string(ExecState state) { return state == ExecState::running ? "running" : "exited"; }

ExecRecord::ExecRecord(Options options)
    : options_(std::move(options)), started_(SteadyClock::now()), started_at_ms_(unix_now_ms()) {
  outcome_.started = started_;
}

void ExecRecord::start(const std::shared_ptr<GuestMux>& mux, const ExecFile* file,
                       const std::string& stdin_data, bool keep_stdin_open) {
  mux_ = mux;
  stream_ = mux->open_stream(shared_from_this());
  // One piece, one write: the guest wakes once for the whole start, not per frame.
  std::string batch;
  if (file) {
    batch += protocol::encode_frame(
        FrameType::write_file, stream_,
        protocol::WriteFile{file->path, file->content.size(), file->mode}.to_payload());
    for (size_t offset = 0; offset < file->content.size(); offset += protocol::kDataChunk) {
      batch += protocol::encode_frame(FrameType::file_data, stream_,
                                      std::string_view(file->content).substr(offset, protocol::kDataChunk));
    }
  }
  batch += protocol::encode_frame(FrameType::exec, stream_, options_.exec.to_payload());
  {
    std::lock_guard lock(mutex_);
    // What the window takes now goes with the exec; the rest follows as the
    // guest acknowledges (on_frame), so starting never waits for a reader.
    if (!keep_stdin_open) {
      stdin_closed_ = true;
      close_after_pending_ = true;
    }
    const size_t taken = append_stdin_frames_locked(stdin_data, batch);
    // Only what waits for room is kept (most stdin fits and is never copied).
    pending_stdin_.assign(stdin_data, taken);
    append_close_if_due_locked(batch);
    mux->send_encoded(std::move(batch));
  }
}

size_t ExecRecord::append_stdin_frames_locked(std::string_view data, std::string& frames) {
  size_t offset = 0;
  while (offset < data.size() && stdin_sent_ - stdin_acked_ < kStdinWindow) {
    const size_t size = std::min(protocol::kDataChunk, data.size() - offset);
    frames += protocol::encode_frame(FrameType::stdin_data, stream_, data.substr(offset, size));
    // Counted before the guest can see it, so its acknowledgement never outruns the count.
    stdin_sent_ += size;
    offset += size;
  }
  return offset;
}

void ExecRecord::append_close_if_due_locked(std::string& frames) {
  if (!pending_stdin_.empty() || !close_after_pending_) return;
  frames += protocol::encode_frame(FrameType::stdin_close, stream_, {});
  close_after_pending_ = false;
}

std::string ExecRecord::next_stdin_locked() {
  std::string frames;
  if (pending_stdin_.empty()) return frames;
  pending_offset_ +=
      append_stdin_frames_locked(std::string_view(pending_stdin_).substr(pending_offset_), frames);
  if (pending_offset_ == pending_stdin_.size()) {
    pending_stdin_ = std::string();
    pending_offset_ = 0;
  }
  append_close_if_due_locked(frames);
  return frames;
}

void ExecRecord::close_stream() {
  if (auto mux = mux_.lock()) mux->close_stream(stream_);
}

void ExecRecord::append(bool is_stdout, std::string_view bytes) {
  const int i = is_stdout ? 0 : 1;
  const uint64_t limit = is_stdout ? options_.exec.stdout_limit : options_.exec.stderr_limit;
  const uint64_t room = received_[i] < limit ? limit - received_[i] : 0;
  const std::string_view accepted =
      bytes.substr(0, static_cast<size_t>(std::min<uint64_t>(room, bytes.size())));
  received_[i] += accepted.size();
  if (accepted.size() < bytes.size()) {
    // The agent enforces the limit itself; getting here means it did not.
    bool& truncated = is_stdout ? outcome_.stdout_truncated : outcome_.stderr_truncated;
    truncated = true;
    outcome_.host_output_limit = true;
  }
  if (accepted.empty()) return;
  if (!chunks_.empty() && first_chunk_ + chunks_.size() - 1 >= sealed_ &&
      chunks_.back().is_stdout == is_stdout && chunks_.back().bytes.size() < kChunkJoin) {
    chunks_.back().bytes.append(accepted);
  } else {
    chunks_.push_back({is_stdout, std::string(accepted)});
  }
  kept_[i] += accepted.size();
  drop_front_locked();
}

void ExecRecord::drop_front_locked() {
  const uint64_t keep = options_.keep_per_stream;
  while (!chunks_.empty() && (kept_[0] > keep || kept_[1] > keep || chunks_.size() > kMaxChunks)) {
    OutputChunk& front = chunks_.front();
    const int i = front.is_stdout ? 0 : 1;
    // Only as much of the front as its stream is over, if that stream is the one over.
    if (kept_[i] > keep && chunks_.size() <= kMaxChunks && front.bytes.size() > kept_[i] - keep) {
      const size_t cut = static_cast<size_t>(kept_[i] - keep);
      front.bytes.erase(0, cut);
      kept_[i] -= cut;
      dropped_[i] += cut;
      break;
    }
    kept_[i] -= front.bytes.size();
    dropped_[i] += front.bytes.size();
    chunks_.pop_front();
    ++first_chunk_;
  }
}

void ExecRecord::end_locked() {
  if (ended_) return;
  ended_ = true;
  ended_at_ms_ = unix_now_ms();
  outcome_.ended = SteadyClock::now();
  changed_.notify_all();
}

void ExecRecord::on_frame(const protocol::Frame& frame) {
  {
    std::lock_guard lock(mutex_);
    if (ended_) return;
    handle_frame_locked(frame);
    if (!ended_) {
      if (frame.type == FrameType::stdin_ack) send_more_stdin_locked();
      return;
    }
  }
  close_stream();
}

void ExecRecord::send_more_stdin_locked() {
  std::string frames = next_stdin_locked();
  if (frames.empty()) return;
  auto mux = mux_.lock();
  if (!mux) return;
  try {
    // Under the lock (the mux only queues), so no caller's stdin can pass it.
    mux->send_encoded(std::move(frames));
  } catch (const Error&) {
    // A broken mux ends the exec, which hears it from the mux.
  }
}

void ExecRecord::handle_frame_locked(const protocol::Frame& frame) {
  try {
    switch (frame.type) {
      case FrameType::stdout_data: append(true, frame.payload); break;
      case FrameType::stderr_data: append(false, frame.payload); break;
      case FrameType::stdin_ack: {
        auto ack = protocol::StdinAck::parse(frame.payload);
        if (ack.bytes > stdin_sent_ - stdin_acked_) {
          throw Error(ErrorCode::protocol, "the guest acknowledged stdin it was never sent");
        }
        stdin_acked_ += ack.bytes;
        break;
      }
      case FrameType::exit:
        outcome_.report = protocol::ExitReport::parse(frame.payload);
        end_locked();
        break;
      case FrameType::error:
        outcome_.failure = "the guest agent reported: " + protocol::ErrorReport::parse(frame.payload).message;
        end_locked();
        break;
      default:
        throw Error(ErrorCode::protocol,
                    "unexpected " + std::string(protocol::to_string(frame.type)) + " frame during an exec");
    }
  } catch (const Error& e) {
    if (e.code() != ErrorCode::protocol) throw;
    outcome_.failure = e.what();
    end_locked();
  }
  changed_.notify_all();
}

void ExecRecord::on_broken(const std::string& reason) {
  std::lock_guard lock(mutex_);
  if (ended_) return;
  if (outcome_.failure.empty() && !outcome_.cancelled && !outcome_.host_timeout) outcome_.failure = reason;
  end_locked();
}

ExecRecord::Update ExecRecord::read(uint64_t from, std::chrono::milliseconds wait) {
  std::unique_lock lock(mutex_);
  const auto has_news = [&] { return ended_ || first_chunk_ + chunks_.size() > from; };
  if (!has_news()) changed_.wait_for(lock, wait, has_news);
  Update update;
  if (from < first_chunk_) {
    update.dropped = first_chunk_ - from;
    from = first_chunk_;
  }
  for (uint64_t n = from; n < first_chunk_ + chunks_.size(); ++n) {
    update.chunks.push_back(chunks_[static_cast<size_t>(n - first_chunk_)]);
  }
  update.next = first_chunk_ + chunks_.size();
  sealed_ = std::max(sealed_, update.next);
  update.ended = ended_;
  return update;
}

bool ExecRecord::wait_until_ended(SteadyClock::time_point until) {
  std::unique_lock lock(mutex_);
  return changed_.wait_until(lock, until, [&] { return ended_; });
}

ExecState ExecRecord::state() const {
  std::lock_guard lock(mutex_);
  return ended_ ? ExecState::exited : ExecState::running;
}

void ExecRecord::stop(GuestMux& mux, StopCause cause) {
  {
    std::lock_guard lock(mutex_);
    if (ended_) return;
    if (!stop_cause_) stop_cause_ = cause;
    // A sandbox that stops kills what runs in it, as a cancel does.
    if (cause == StopCause::cancelled || cause == StopCause::sandbox_stopped) outcome_.cancelled = true;
    if (cause == StopCause::host_timeout) outcome_.host_timeout = true;
  }
  try {
    mux.send(FrameType::cancel, stream_);
  } catch (const Error&) {
    // A broken mux has ended the exec already.
  }
}

void ExecRecord::abandon(const std::string& failure) {
  {
    std::lock_guard lock(mutex_);
    if (ended_) return;
    if (outcome_.failure.empty() && !outcome_.host_timeout && !outcome_.cancelled) outcome_.failure = failure;
    end_locked();
  }
  close_stream();
}

void ExecRecord::signal(GuestMux& mux, int number) {
  {
    std::lock_guard lock(mutex_);
    if (ended_) throw Error(ErrorCode::conflict, "exec " + options_.id + " has exited");
  }
  mux.send(FrameType::signal, stream_, protocol::Signal{number}.to_payload());
}

void ExecRecord::resize(GuestMux& mux, uint16_t rows, uint16_t cols) {
  {
    std::lock_guard lock(mutex_);
    if (ended_) throw Error(ErrorCode::conflict, "exec " + options_.id + " has exited");
  }
  mux.send(FrameType::resize, stream_, protocol::Resize{rows, cols}.to_payload());
}

void ExecRecord::write_stdin(GuestMux& mux, std::string_view bytes, bool close,
                             SteadyClock::time_point deadline) {
  for (size_t offset = 0; offset < bytes.size();) {
    const size_t size = std::min(protocol::kDataChunk, bytes.size() - offset);
    {
      std::unique_lock lock(mutex_);
      if (ended_) throw Error(ErrorCode::conflict, "exec " + options_.id + " has exited");
      if (stdin_closed_) throw Error(ErrorCode::conflict, "the stdin of exec " + options_.id + " is closed");
      if (!changed_.wait_until(lock, deadline, [&] { return ended_ || stdin_has_room_locked(); })) {
        throw Error(ErrorCode::vm, "exec " + options_.id + " stopped reading its stdin");
      }
      if (ended_) throw Error(ErrorCode::conflict, "exec " + options_.id + " has exited");
      stdin_sent_ += size;
    }
    mux.send_bulk(FrameType::stdin_data, stream_, bytes.substr(offset, size), deadline);
    offset += size;
  }
  if (!close) return;
  {
    std::lock_guard lock(mutex_);
    if (stdin_closed_) return;
    stdin_closed_ = true;
    if (ended_) return;
    if (!pending_stdin_.empty()) {
      close_after_pending_ = true;  // after what was given at the start
      return;
    }
  }
  mux.send(FrameType::stdin_close, stream_);
}

bool ExecRecord::wait_for_stdin_room(SteadyClock::time_point until) {
  std::unique_lock lock(mutex_);
  return changed_.wait_until(lock, until, [&] { return ended_ || stdin_has_room_locked(); });
}

bool ExecRecord::stdin_has_room_locked() const {
  return pending_stdin_.empty() && stdin_sent_ - stdin_acked_ < kStdinWindow;
}

ExecOutcome ExecRecord::outcome() const {
  std::lock_guard lock(mutex_);
  ExecOutcome outcome = outcome_;
  for (const auto& chunk : chunks_)
    (chunk.is_stdout ? outcome.stdout_data : outcome.stderr_data) += chunk.bytes;
  return outcome;
}

std::optional<int64_t> ExecRecord::ended_at_ms() const {
  std::lock_guard lock(mutex_);
  return ended_at_ms_;
}

uint64_t ExecRecord::dropped_bytes(bool is_stdout) const {
  std::lock_guard lock(mutex_);
  return dropped_[is_stdout ? 0 : 1];
}

void ExecRecord::trim(uint64_t keep) {
  std::lock_guard lock(mutex_);
  options_.keep_per_stream = std::min(options_.keep_per_stream, keep);
  drop_front_locked();
}

}  // namespace airlock::engine
