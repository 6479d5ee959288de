#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace airlock::protocol {

// Wire format (docs/protocol.md): every frame is a 12-byte little-endian
// header followed by `length` payload bytes.
//   u32 length | u8 type | u8 flags (0) | u16 reserved (0) | u32 stream
inline constexpr size_t kHeaderSize = 12;
inline constexpr uint32_t kMaxPayload = 256 * 1024;
// Bulk data (files, stdin, output) travels in chunks of at most this size so
// control frames are never stuck behind a large one.
inline constexpr size_t kDataChunk = 64 * 1024;
// A sandbox's file transfers move in frames this large: fewer frames, a
// quarter of the per-frame work; still about a millisecond on the channel.
inline constexpr size_t kFileChunk = 256 * 1024 - 64;

enum class FrameType : uint8_t {
  hello = 1,           // guest -> host, JSON, stream 0: first frame on the channel
  hello_ack = 2,       // host -> guest, JSON, stream 0
  write_file = 3,      // host -> guest, JSON header; `size` bytes of file_data follow
  file_data = 4,       // host -> guest, raw bytes
  exec = 5,            // host -> guest, JSON
  stdin_data = 6,      // host -> guest, raw bytes
  stdin_close = 7,     // host -> guest, empty
  stdin_ack = 8,       // guest -> host, JSON {"bytes"}: stdin consumed, flow control credit
  stdout_data = 9,     // guest -> host, raw bytes
  stderr_data = 10,    // guest -> host, raw bytes
  exit = 11,           // guest -> host, JSON: the program ended
  cancel = 12,         // host -> guest, empty: kill the program's whole process tree
  error = 13,          // guest -> host, JSON {"message"}: the request failed in the guest
  resume = 14,         // host -> guest, JSON: this VM is a clone restored from a snapshot
  resumed = 15,        // guest -> host, JSON: clock and RNG are fresh; ready for requests
  prestart = 16,       // host -> guest, JSON exec: start an interpreter now, feed it code later
  prestarted = 17,     // guest -> host, JSON {}: the prestarted interpreter is ready
  warm = 18,           // host -> guest, JSON exec: run our warm-up program in the prestarted interpreter
  warmed = 19,         // guest -> host, JSON {}: it ran, and the interpreter waits for the program again
  network_setup = 20,  // host -> guest, JSON: configure the network interface, hosts and resolver
  network_ready = 21,  // guest -> host, JSON {}: done
  mount = 22,          // host -> guest, JSON: mount the shared directories (after boot or restore)
  mounted = 23,        // guest -> host, JSON {}: done
  read_file = 24,      // host -> guest, JSON {path, max_bytes}: send a file of the sandbox user's
  file_end = 25,       // guest -> host, JSON {bytes, mode}: the file_data of a read_file are all sent
  file_written = 26,   // guest -> host, JSON {bytes}: a write_file with `as_user` is on disk
  file_ack = 27,       // host -> guest, JSON {bytes}: read_file data taken, flow control credit
  signal = 28,         // host -> guest, JSON {signal}: deliver a signal to the exec's program
  list_dir = 29,       // host -> guest, JSON {path, max_entries}: list a directory of the sandbox user's
  listing = 30,        // guest -> host, JSON {entries, more}: some of its entries (more: others follow)
  remove_file = 31,    // host -> guest, JSON {path}: remove a file or an empty directory, as the sandbox user
  removed = 32,        // guest -> host, JSON {}: done
  port_open = 33,      // host -> guest, JSON {port}: connect to this TCP port on the guest's loopback
  port_opened = 34,    // guest -> host, JSON {}: connected; port_data may flow both ways
  port_data = 35,      // both ways, raw bytes of a forwarded connection
  port_ack = 36,       // both ways, JSON {bytes}: port_data taken (flow control credit)
  port_close = 37,     // both ways, JSON {}: no more port_data from this side (its end closed)
  resize = 38,         // host -> guest, JSON {rows, cols}: a tty exec's terminal size
  stat = 39,           // host -> guest, JSON {path}: describe a path as the sandbox user (a listing)
  make_node = 40,      // host -> guest, JSON {path, kind, mode, target}: mkdir or symlink (a listing)
  quiesce = 41,        // host -> guest, empty: a snapshot follows; send nothing until thaw or resume
  quiesced = 42,       // guest -> host, empty: nothing more comes until then
  thaw = 43,           // host -> guest, empty: the snapshot is taken; go on as before
  context_start = 44,  // host -> guest, JSON {context, language, exec}: start a code context
  context_info = 45,   // guest -> host, JSON {contexts}: the contexts a start or control is about
  context_run = 46,    // host -> guest, JSON {context, code, ...}: run one cell in a context
  context_event = 47,  // guest -> host, raw bytes: pieces of the interpreter's JSON event lines
  context_done = 48,   // guest -> host, JSON {status, execution_count, ...}: the cell ended
  context_control = 49,  // host -> guest, JSON {context, action}: interrupt, restart, stop, list
};

inline constexpr uint8_t kMaxFrameType = 49;
// Bytes of port_data either side may send ahead of the other's port_ack.
inline constexpr uint64_t kPortWindow = 1 << 20;

std::string_view to_string(FrameType type);

struct Frame {
  FrameType type;
  uint32_t stream = 0;
  std::string payload;
};

// A frame whose payload is seen where the decoder holds it (FrameDecoder::next_view).
struct FrameView {
  FrameType type;
  uint32_t stream = 0;
  std::string_view payload;
  Frame to_frame() const { return {type, stream, std::string(payload)}; }
};

// Throws Error(invalid_argument) if the payload exceeds kMaxPayload.
std::string encode_frame(FrameType type, uint32_t stream, std::string_view payload);
// The 12 bytes that go before `payload_size` bytes of payload (for a writer
// that sends the payload from where it lies). Throws as encode_frame.
std::string encode_frame_header(FrameType type, uint32_t stream, size_t payload_size);

// Incremental decoder for a byte stream from an untrusted peer. Memory stays
// bounded by kHeaderSize + kMaxPayload plus one fed chunk; any violation (bad
// type, non-zero reserved bits, oversized length, bytes cut off at EOF) throws
// Error(protocol) naming what was wrong, and the decoder is then unusable.
class FrameDecoder {
 public:
  void feed(std::string_view bytes);
  // Room for up to `max` bytes to be read straight into the decoder (a
  // reader then copies each byte once, not through a buffer of its own);
  // commit says how many came.
  char* prepare(size_t max);
  void commit(size_t count);
  std::optional<Frame> next();
  // The same, its payload seen in place: valid until the next feed or prepare.
  std::optional<FrameView> next_view();
  // Call at end of stream: throws if a partial frame is pending.
  void finish() const;
  size_t buffered() const { return end_ - begin_; }

 private:
  void make_room(size_t count);
  std::string buffer_;  // [begin_, end_) holds what is not decoded yet
  size_t begin_ = 0;
  size_t end_ = 0;
  bool failed_ = false;
};

}  // namespace airlock::protocol
