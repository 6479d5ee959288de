#pragma once

#include <condition_variable>
#include <deque>
#include <mutex>
#include <string>
#include <thread>

#include "engine/guest_session.h"
#include "server/http_server.h"

namespace airlock::server {

// The NDJSON events of a streamed run, written to the client by a thread of
// their own, so the run (and its time limit) never waits for the client. At
// most `max_bytes` wait to be written: a client that falls that far behind,
// or goes away, cancels the run; each write still has the server's write
// deadline, so a client that stops reading is cut off.
class EventStream {
 public:
  static constexpr size_t kDefaultMaxBytes = 8 << 20;

  // Begins the chunked response on `writer`.
  EventStream(ResponseWriter& writer, const engine::CancelToken& cancel, size_t max_bytes = kDefaultMaxBytes);
  ~EventStream();  // finish() if not done yet
  EventStream(const EventStream&) = delete;
  EventStream& operator=(const EventStream&) = delete;

  void push(std::string line);
  // Queues the last line (whatever the queue holds), ends the stream and
  // waits until it is written or the client is gone.
  void finish(std::string last_line);
  size_t bytes_dropped() const;

 private:
  void write_loop();

  ResponseWriter& writer_;
  const engine::CancelToken& cancel_;
  const size_t max_bytes_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::string> queue_;
  size_t queued_bytes_ = 0;
  size_t dropped_bytes_ = 0;
  bool finishing_ = false;
  bool failed_ = false;  // the client fell behind or went away
  std::thread writer_thread_;
};

// An engine::OutputSink that streams stdout and stderr events.
class NdjsonSink final : public engine::OutputSink {
 public:
  explicit NdjsonSink(EventStream& stream) : stream_(stream) {}
  void on_stdout(std::string_view bytes) override;
  void on_stderr(std::string_view bytes) override;

 private:
  EventStream& stream_;
};

}  // namespace airlock::server
