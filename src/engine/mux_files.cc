#include "engine/mux_files.h"

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <optional>

#include "common/error.h"

namespace airlock::engine {

using protocol::FrameType;

namespace {

constexpr uint64_t kDownloadWindow = 4 << 20;

// Collects the frames of one file transfer for the thread that waits on it.
class TransferInbox : public StreamHandler {
 public:
  explicit TransferInbox(uint64_t bound) : bound_(bound) {}

  void on_frame(const protocol::Frame& frame) override {
    std::lock_guard lock(mutex_);
    if (broken_) return;
    if (frame.type == FrameType::file_data) {
      // More than the window allows: a guest that ignores flow control.
      if (queued_ + frame.payload.size() > bound_) {
        broken_ = "the guest sent file data past its window";
      } else {
        queued_ += frame.payload.size();
        frames_.push_back(frame);
      }
    } else {
      frames_.push_back(frame);
    }
    changed_.notify_all();
  }

  void on_broken(const std::string& reason) override {
    std::lock_guard lock(mutex_);
    if (!broken_) broken_ = reason;
    changed_.notify_all();
  }

  protocol::Frame next(SteadyClock::time_point deadline, const char* doing) {
    std::unique_lock lock(mutex_);
    if (!changed_.wait_until(lock, deadline, [&] { return !frames_.empty() || broken_; })) {
      throw Error(ErrorCode::vm, std::string("the guest did not ") + doing + " in time");
    }
    if (frames_.empty()) throw Error(ErrorCode::vm, *broken_);
    protocol::Frame frame = std::move(frames_.front());
    frames_.pop_front();
    if (frame.type == FrameType::file_data) queued_ -= frame.payload.size();
    return frame;
  }

 private:
  const uint64_t bound_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<protocol::Frame> frames_;
  uint64_t queued_ = 0;
  std::optional<std::string> broken_;
};

// Holds a stream open for as long as a transfer uses it. One that ends
// before it is complete (an error, a reader that went away) tells the guest
// to drop its side of the transfer.
class OpenStream {
 public:
  OpenStream(GuestMux& mux, std::shared_ptr<StreamHandler> handler)
      : mux_(mux), stream_(mux.open_stream(std::move(handler))) {}
  ~OpenStream() {
    if (!complete_) {
      try {
        mux_.send(FrameType::cancel, stream_);
      } catch (const Error&) {
        // The guest is gone; so is its side.
      }
    }
    mux_.close_stream(stream_);
  }
  void complete() { complete_ = true; }
  OpenStream(const OpenStream&) = delete;
  OpenStream& operator=(const OpenStream&) = delete;
  uint32_t id() const { return stream_; }

 private:
  GuestMux& mux_;
  uint32_t stream_;
  bool complete_ = false;
};

}  // namespace

void throw_file_error(const protocol::ErrorReport& report) {
  const ErrorCode code = report.kind == "not_found"           ? ErrorCode::not_found
                         : report.kind == "permission_denied" ? ErrorCode::permission_denied
                         : report.kind == "not_a_file" || report.kind == "exists" ? ErrorCode::conflict
                         : report.kind == "no_space"                              ? ErrorCode::no_space
                         : report.kind == "too_large"                             ? ErrorCode::too_large
                                                      : ErrorCode::invalid_argument;
  throw Error(code, report.message);
}

void upload_file(GuestMux& mux, const std::string& path, uint64_t size, uint32_t mode,
                 const ContentReader& read, std::chrono::milliseconds stall, int64_t mtime_ms) {
  auto inbox = std::make_shared<TransferInbox>(0);
  OpenStream stream(mux, inbox);
  protocol::WriteFile header{path, size, mode};
  header.as_user = true;
  header.mtime_ms = mtime_ms;
  mux.send(FrameType::write_file, stream.id(), header.to_payload());
  std::string chunk(protocol::kFileChunk, '\0');
  for (uint64_t sent = 0; sent < size;) {
    const size_t want = static_cast<size_t>(std::min<uint64_t>(chunk.size(), size - sent));
    size_t got = 0;
    while (got < want) {
      const size_t n = read(chunk.data() + got, want - got);
      if (n == 0) throw Error(ErrorCode::invalid_argument, "the body ended before its Content-Length");
      got += n;
    }
    mux.send_bulk(FrameType::file_data, stream.id(), std::string_view(chunk.data(), got),
                  SteadyClock::now() + stall);
    sent += got;
  }
  protocol::Frame reply = inbox->next(SteadyClock::now() + stall, "write the file");
  stream.complete();
  if (reply.type == FrameType::error) throw_file_error(protocol::ErrorReport::parse(reply.payload));
  if (reply.type != FrameType::file_written) {
    throw Error(ErrorCode::protocol,
                "expected file_written from the guest, got " + std::string(protocol::to_string(reply.type)));
  }
  if (protocol::FileWritten::parse(reply.payload).bytes != size) {
    throw Error(ErrorCode::protocol, "the guest wrote another size than was sent");
  }
}

protocol::FileEnd download_file(GuestMux& mux, const std::string& path, uint64_t max_bytes,
                                const std::function<bool(std::string_view)>& on_data,
                                SteadyClock::time_point deadline) {
  auto inbox = std::make_shared<TransferInbox>(kDownloadWindow);
  OpenStream stream(mux, inbox);
  protocol::ReadFile request{path, max_bytes};
  request.window = kDownloadWindow;
  mux.send(FrameType::read_file, stream.id(), request.to_payload());
  uint64_t received = 0;
  uint64_t unacked = 0;
  for (;;) {
    protocol::Frame frame = inbox->next(deadline, "send the file");
    if (frame.type == FrameType::error || frame.type == FrameType::file_end) stream.complete();
    if (frame.type == FrameType::error) throw_file_error(protocol::ErrorReport::parse(frame.payload));
    if (frame.type == FrameType::file_end) {
      protocol::FileEnd end = protocol::FileEnd::parse(frame.payload);
      if (end.bytes != received)
        throw Error(ErrorCode::protocol, "the guest's file_end disagrees with its data");
      return end;
    }
    if (frame.type != FrameType::file_data) {
      throw Error(ErrorCode::protocol,
                  "expected file_data from the guest, got " + std::string(protocol::to_string(frame.type)));
    }
    received += frame.payload.size();
    // Whatever the guest claims, no more than was asked for reaches the caller.
    if (received > max_bytes) {
      throw Error(ErrorCode::too_large, path + " is larger than " + std::to_string(max_bytes) + " bytes");
    }
    if (!on_data(frame.payload)) throw Error(ErrorCode::cancelled, "the reader of " + path + " went away");
    // Credit in quarters of the window: few acks, and the guest never waits on one.
    unacked += frame.payload.size();
    if (unacked >= kDownloadWindow / 4) {
      mux.send(FrameType::file_ack, stream.id(), protocol::FileAck{unacked}.to_payload());
      unacked = 0;
    }
  }
}

DirectoryListing list_directory(GuestMux& mux, const std::string& path, uint64_t max_entries,
                                SteadyClock::time_point deadline) {
  auto inbox = std::make_shared<TransferInbox>(0);
  OpenStream stream(mux, inbox);
  mux.send(FrameType::list_dir, stream.id(), protocol::ListDir{path, max_entries}.to_payload());
  DirectoryListing listing;
  for (;;) {
    protocol::Frame frame = inbox->next(deadline, "list the directory");
    if (frame.type == FrameType::error) {
      stream.complete();
      throw_file_error(protocol::ErrorReport::parse(frame.payload));
    }
    if (frame.type != FrameType::listing) {
      throw Error(ErrorCode::protocol,
                  "expected listing from the guest, got " + std::string(protocol::to_string(frame.type)));
    }
    protocol::Listing part = protocol::Listing::parse(frame.payload);
    if (listing.entries.size() + part.entries.size() > max_entries) {
      throw Error(ErrorCode::protocol, "the guest listed more entries than were asked for");
    }
    for (auto& entry : part.entries) listing.entries.push_back(std::move(entry));
    if (!part.more) {
      stream.complete();
      listing.truncated = part.truncated;
      return listing;
    }
  }
}

namespace {

// Sends one request that is answered by a listing of one entry.
protocol::DirEntry one_entry(GuestMux& mux, FrameType type, const std::string& payload, const char* doing,
                             SteadyClock::time_point deadline) {
  auto inbox = std::make_shared<TransferInbox>(0);
  OpenStream stream(mux, inbox);
  mux.send(type, stream.id(), payload);
  protocol::Frame reply = inbox->next(deadline, doing);
  stream.complete();
  if (reply.type == FrameType::error) throw_file_error(protocol::ErrorReport::parse(reply.payload));
  if (reply.type != FrameType::listing) {
    throw Error(ErrorCode::protocol,
                "expected listing from the guest, got " + std::string(protocol::to_string(reply.type)));
  }
  protocol::Listing listing = protocol::Listing::parse(reply.payload);
  if (listing.entries.size() != 1) throw Error(ErrorCode::protocol, "the guest described not one entry");
  return std::move(listing.entries.front());
}

}  // namespace

protocol::DirEntry describe_path(GuestMux& mux, const std::string& path, SteadyClock::time_point deadline) {
  return one_entry(mux, FrameType::stat, protocol::StatPath{path}.to_payload(), "describe the path",
                   deadline);
}

protocol::DirEntry make_node(GuestMux& mux, const protocol::MakeNode& node,
                             SteadyClock::time_point deadline) {
  return one_entry(mux, FrameType::make_node, node.to_payload(), "make the node", deadline);
}

void remove_path(GuestMux& mux, const std::string& path, SteadyClock::time_point deadline) {
  auto inbox = std::make_shared<TransferInbox>(0);
  OpenStream stream(mux, inbox);
  mux.send(FrameType::remove_file, stream.id(), protocol::RemoveFile{path}.to_payload());
  protocol::Frame reply = inbox->next(deadline, "remove the file");
  stream.complete();
  if (reply.type == FrameType::error) throw_file_error(protocol::ErrorReport::parse(reply.payload));
  if (reply.type != FrameType::removed) {
    throw Error(ErrorCode::protocol,
                "expected removed from the guest, got " + std::string(protocol::to_string(reply.type)));
  }
}

}  // namespace airlock::engine
