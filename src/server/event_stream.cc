#include "server/event_stream.h"

#include <nlohmann/json.hpp>

#include "engine/run_result.h"

namespace airlock::server {

EventStream::EventStream(ResponseWriter& writer, const engine::CancelToken& cancel, size_t max_bytes)
    : writer_(writer), cancel_(cancel), max_bytes_(max_bytes) {
  writer_.begin_stream(200, "application/x-ndjson");
  writer_thread_ = std::thread([this] { write_loop(); });
}

EventStream::~EventStream() {
  if (writer_thread_.joinable()) finish({});
}

void EventStream::push(std::string line) {
  {
    std::lock_guard lock(mutex_);
    if (failed_ || queued_bytes_ + line.size() > max_bytes_) {
      dropped_bytes_ += line.size();
      if (failed_) return;
      failed_ = true;
    } else {
      queued_bytes_ += line.size();
      queue_.push_back(std::move(line));
      wake_.notify_one();
      return;
    }
  }
  // Too far behind: the run stops rather than buffer without bound.
  cancel_.cancel();
}

void EventStream::finish(std::string last_line) {
  {
    std::lock_guard lock(mutex_);
    if (!last_line.empty()) {
      queued_bytes_ += last_line.size();
      queue_.push_back(std::move(last_line));
    }
    finishing_ = true;
  }
  wake_.notify_one();
  writer_thread_.join();
  writer_.end_stream();
}

size_t EventStream::bytes_dropped() const {
  std::lock_guard lock(mutex_);
  return dropped_bytes_;
}

void EventStream::write_loop() {
  std::unique_lock lock(mutex_);
  for (;;) {
    wake_.wait(lock, [this] { return finishing_ || !queue_.empty(); });
    if (queue_.empty()) return;  // finishing, and all written
    std::string line = std::move(queue_.front());
    queue_.pop_front();
    queued_bytes_ -= line.size();
    lock.unlock();
    const bool written = writer_.write_chunk(line);
    lock.lock();
    if (!written) {
      // The client is gone (or cut off by the write deadline): nothing more is sent.
      failed_ = true;
      queue_.clear();
      queued_bytes_ = 0;
      lock.unlock();
      cancel_.cancel();
      lock.lock();
    }
  }
}

namespace {

std::string output_event(const char* stream, std::string_view bytes) {
  engine::EncodedOutput encoded = engine::encode_output(std::string(bytes));
  nlohmann::json event = {
      {"type", stream}, {"data", std::move(encoded.data)}, {"encoding", encoded.encoding}};
  return event.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

}  // namespace

void NdjsonSink::on_stdout(std::string_view bytes) { stream_.push(output_event("stdout", bytes)); }
void NdjsonSink::on_stderr(std::string_view bytes) { stream_.push(output_event("stderr", bytes)); }

}  // namespace airlock::server
