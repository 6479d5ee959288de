#pragma once

#include <sys/socket.h>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "common/unique_fd.h"

namespace airlock {

// Writes all of data, retrying on EINTR and short writes (blocking fds only).
void write_all(int fd, std::string_view data);

// One read(2), retrying on EINTR. Returns bytes read (0 at EOF), or nullopt
// when a non-blocking fd has nothing to read.
std::optional<size_t> read_some(int fd, char* buffer, size_t size);

std::string read_file(const std::string& path, size_t max_size);
// "path:size:mtime" — changes whenever the file is replaced or rewritten; for cache keys.
std::string file_identity(const std::string& path);
void write_file(const std::string& path, std::string_view data, int mode = 0644);

void set_nonblocking(int fd, bool nonblocking = true);
void set_cloexec(int fd, bool cloexec = true);

std::pair<UniqueFd, UniqueFd> make_pipe();         // {read end, write end}, CLOEXEC
std::pair<UniqueFd, UniqueFd> make_socket_pair();  // AF_UNIX stream, CLOEXEC

// Control data with room for one descriptor passed with SCM_RIGHTS.
struct FdControl {
  alignas(cmsghdr) char bytes[CMSG_SPACE(sizeof(int))] = {};
};
// Makes `message` carry `fd` (its control data lives in `control`).
void attach_fd(msghdr& message, FdControl& control, int fd);

}  // namespace airlock
