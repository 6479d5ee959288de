#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "common/unique_fd.h"
#include "guest/channel.h"
#include "guest/file_writer.h"
#include "protocol/messages.h"

namespace airlock::guest {

// Who uploads and downloads: the programs' user.
inline constexpr uid_t kSandboxUid = 1000;

// A file the host is writing into the guest: its write_file header came,
// its file_data frames follow on the same stream, between frames of other
// streams. A failure (a path refused, a full disk) is reported once all the
// data it announced has come, so the stream stays in step.
class Upload {
 public:
  Upload(Channel& channel, const protocol::Frame& header_frame);
  // Takes one file_data frame's payload; true once the file is complete (answered).
  bool on_data(std::string_view data);
  // True if it announced no data at all (answered already).
  bool complete() const { return remaining_ == 0; }

 private:
  void finish();
  Channel& channel_;
  uint32_t stream_;
  protocol::WriteFile header_;
  std::optional<PendingFile> file_;  // put in place once whole
  uint64_t remaining_;
  std::string failure_;
  std::string kind_;
};

// A file of the sandbox user's the host reads: file_data frames as the
// host's window allows (file_ack opens it), then file_end, or an error
// (perhaps after some data) that says why not.
class Download {
 public:
  Download(Channel& channel, const protocol::Frame& request_frame);
  // Sends what the window allows (a few chunks at most, so other streams
  // get their turn); true once it is over.
  bool step();
  // Whether step() has something to send now.
  bool can_send() const;
  void on_ack(uint64_t bytes);

 private:
  void refuse(const std::string& message, const std::string& kind);
  Channel& channel_;
  uint32_t stream_;
  protocol::ReadFile request_;
  UniqueFd file_;
  uint32_t mode_ = 0;
  uint64_t sent_ = 0;
  uint64_t acked_ = 0;
  bool done_ = false;
  std::string buffer_;  // one frame's data
};

// Answers a list_dir with listing frames (or an error), as the sandbox user.
void send_listing(Channel& channel, const protocol::Frame& frame);
// Answers a remove_file with removed (or an error), as the sandbox user.
void remove_file(Channel& channel, const protocol::Frame& frame);
// Answers a stat with a listing of the one path (or an error), as the sandbox user.
void describe_path(Channel& channel, const protocol::Frame& frame);
// Answers a make_node with a listing of what it made (or an error), as the sandbox user.
void make_node(Channel& channel, const protocol::Frame& frame);

}  // namespace airlock::guest
