#include "protocol/frame.h"

#include <algorithm>
#include <cstring>

#include "common/error.h"

namespace airlock::protocol {

namespace {

void put_u32(std::string& out, uint32_t value) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((value >> (8 * i)) & 0xff));
}

uint32_t get_u32(const char* p) {
  uint32_t value = 0;
  for (int i = 3; i >= 0; --i) value = (value << 8) | static_cast<uint8_t>(p[i]);
  return value;
}

[[noreturn]] void fail(std::string message) {
  throw Error(ErrorCode::protocol, "malformed frame from guest: " + message);
}

}  // namespace

std::string_view to_string(FrameType type) {
  switch (type) {
    case FrameType::hello: return "hello";
    case FrameType::hello_ack: return "hello_ack";
    case FrameType::write_file: return "write_file";
    case FrameType::file_data: return "file_data";
    case FrameType::exec: return "exec";
    case FrameType::stdin_data: return "stdin_data";
    case FrameType::stdin_close: return "stdin_close";
    case FrameType::stdin_ack: return "stdin_ack";
    case FrameType::stdout_data: return "stdout_data";
    case FrameType::stderr_data: return "stderr_data";
    case FrameType::exit: return "exit";
    case FrameType::cancel: return "cancel";
    case FrameType::error: return "error";
    case FrameType::resume: return "resume";
    case FrameType::resumed: return "resumed";
    case FrameType::prestart: return "prestart";
    case FrameType::prestarted: return "prestarted";
    case FrameType::warm: return "warm";
    case FrameType::warmed: return "warmed";
    case FrameType::network_setup: return "network_setup";
    case FrameType::network_ready: return "network_ready";
    case FrameType::mount: return "mount";
    case FrameType::mounted: return "mounted";
    case FrameType::read_file: return "read_file";
    case FrameType::file_end: return "file_end";
    case FrameType::file_written: return "file_written";
    case FrameType::file_ack: return "file_ack";
    case FrameType::signal: return "signal";
    case FrameType::list_dir: return "list_dir";
    case FrameType::listing: return "listing";
    case FrameType::remove_file: return "remove_file";
    case FrameType::removed: return "removed";
    case FrameType::port_open: return "port_open";
    case FrameType::port_opened: return "port_opened";
    case FrameType::port_data: return "port_data";
    case FrameType::port_ack: return "port_ack";
    case FrameType::port_close: return "port_close";
    case FrameType::resize: return "resize";
    case FrameType::stat: return "stat";
    case FrameType::make_node: return "make_node";
    case FrameType::quiesce: return "quiesce";
    case FrameType::quiesced: return "quiesced";
    case FrameType::thaw: return "thaw";
    case FrameType::context_start: return "context_start";
    case FrameType::context_info: return "context_info";
    case FrameType::context_run: return "context_run";
    case FrameType::context_event: return "context_event";
    case FrameType::context_done: return "context_done";
    case FrameType::context_control: return "context_control";
  }
  return "unknown";
}

std::string encode_frame(FrameType type, uint32_t stream, std::string_view payload) {
  std::string out = encode_frame_header(type, stream, payload.size());
  out.reserve(kHeaderSize + payload.size());
  out.append(payload);
  return out;
}

std::string encode_frame_header(FrameType type, uint32_t stream, size_t payload_size) {
  if (payload_size > kMaxPayload) {
    throw Error(ErrorCode::invalid_argument, "frame payload of " + std::to_string(payload_size) +
                                                 " bytes exceeds the maximum of " +
                                                 std::to_string(kMaxPayload));
  }
  std::string out;
  out.reserve(kHeaderSize);
  put_u32(out, static_cast<uint32_t>(payload_size));
  out.push_back(static_cast<char>(type));
  out.push_back(0);
  out.push_back(0);
  out.push_back(0);
  put_u32(out, stream);
  return out;
}

void FrameDecoder::make_room(size_t count) {
  if (failed_) fail("decoder used after an error");
  if (buffer_.size() - end_ >= count) return;
  // Compact before growing, so the buffer never holds more than one frame plus one chunk.
  if (begin_ > 0) {
    std::memmove(buffer_.data(), buffer_.data() + begin_, end_ - begin_);
    end_ -= begin_;
    begin_ = 0;
  }
  if (buffer_.size() - end_ < count) buffer_.resize(end_ + count);
}

void FrameDecoder::feed(std::string_view bytes) {
  make_room(bytes.size());
  std::memcpy(buffer_.data() + end_, bytes.data(), bytes.size());
  end_ += bytes.size();
}

char* FrameDecoder::prepare(size_t max) {
  make_room(max);
  return buffer_.data() + end_;
}

void FrameDecoder::commit(size_t count) { end_ = std::min(buffer_.size(), end_ + count); }

std::optional<Frame> FrameDecoder::next() {
  auto view = next_view();
  if (!view) return std::nullopt;
  return view->to_frame();
}

std::optional<FrameView> FrameDecoder::next_view() {
  if (failed_) fail("decoder used after an error");
  const size_t available = end_ - begin_;
  if (available < kHeaderSize) return std::nullopt;
  const char* header = buffer_.data() + begin_;
  const uint32_t length = get_u32(header);
  const uint8_t type = static_cast<uint8_t>(header[4]);
  const uint8_t flags = static_cast<uint8_t>(header[5]);
  const uint8_t reserved0 = static_cast<uint8_t>(header[6]);
  const uint8_t reserved1 = static_cast<uint8_t>(header[7]);
  // Validate the header before waiting for the payload: a bogus length must
  // not make us buffer gigabytes.
  if (length > kMaxPayload) {
    failed_ = true;
    fail("payload length " + std::to_string(length) + " exceeds the maximum of " +
         std::to_string(kMaxPayload));
  }
  if (type == 0 || type > kMaxFrameType) {
    failed_ = true;
    fail("unknown frame type " + std::to_string(type));
  }
  if (flags != 0 || reserved0 != 0 || reserved1 != 0) {
    failed_ = true;
    fail("reserved header bits are set");
  }
  if (available < kHeaderSize + length) return std::nullopt;
  FrameView frame;
  frame.type = static_cast<FrameType>(type);
  frame.stream = get_u32(header + 8);
  frame.payload = std::string_view(header + kHeaderSize, length);
  begin_ += kHeaderSize + length;
  // Everything decoded: the next bytes go to the start, nothing is moved.
  if (begin_ == end_) begin_ = end_ = 0;
  return frame;
}

void FrameDecoder::finish() const {
  const size_t pending = end_ - begin_;
  if (pending != 0) {
    fail("stream ended inside a frame (" + std::to_string(pending) + " bytes of a truncated frame)");
  }
}

}  // namespace airlock::protocol
