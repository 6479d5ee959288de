#include "common/io.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <cstring>

#include "common/error.h"

namespace airlock {

void write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_errno("write");
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
}

std::optional<size_t> read_some(int fd, char* buffer, size_t size) {
  for (;;) {
    ssize_t n = ::read(fd, buffer, size);
    if (n >= 0) return static_cast<size_t>(n);
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return std::nullopt;
    // A peer that vanished is end of stream, not a failure of ours (EIO: a
    // pty whose other side every process has closed).
    if (errno == ECONNRESET || errno == EIO) return 0;
    throw_errno("read");
  }
}

std::string file_identity(const std::string& path) {
  struct stat info {};
  if (::stat(path.c_str(), &info) < 0) return path + ":missing";
  return path + ":" + std::to_string(info.st_size) + ":" + std::to_string(info.st_mtim.tv_sec) + "." +
         std::to_string(info.st_mtim.tv_nsec);
}

std::string read_file(const std::string& path, size_t max_size) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) throw_errno("open", path);
  std::string content;
  char buffer[65536];
  for (;;) {
    auto n = read_some(fd.get(), buffer, sizeof buffer);
    if (!n || *n == 0) break;
    if (content.size() + *n > max_size) {
      throw Error(ErrorCode::invalid_argument,
                  "file " + path + " is larger than the limit of " + std::to_string(max_size) + " bytes");
    }
    content.append(buffer, *n);
  }
  return content;
}

void write_file(const std::string& path, std::string_view data, int mode) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode));
  if (!fd) throw_errno("open", path);
  write_all(fd.get(), data);
}

void set_nonblocking(int fd, bool nonblocking) {
  int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0) throw_errno("fcntl(F_GETFL)");
  flags = nonblocking ? (flags | O_NONBLOCK) : (flags & ~O_NONBLOCK);
  if (::fcntl(fd, F_SETFL, flags) < 0) throw_errno("fcntl(F_SETFL)");
}

void set_cloexec(int fd, bool cloexec) {
  int flags = ::fcntl(fd, F_GETFD);
  if (flags < 0) throw_errno("fcntl(F_GETFD)");
  flags = cloexec ? (flags | FD_CLOEXEC) : (flags & ~FD_CLOEXEC);
  if (::fcntl(fd, F_SETFD, flags) < 0) throw_errno("fcntl(F_SETFD)");
}

std::pair<UniqueFd, UniqueFd> make_pipe() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) < 0) throw_errno("pipe2");
  return {UniqueFd(fds[0]), UniqueFd(fds[1])};
}

std::pair<UniqueFd, UniqueFd> make_socket_pair() {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0) throw_errno("socketpair");
  return {UniqueFd(fds[0]), UniqueFd(fds[1])};
}

void attach_fd(msghdr& message, FdControl& control, int fd) {
  message.msg_control = control.bytes;
  message.msg_controllen = sizeof control.bytes;
  cmsghdr* header = CMSG_FIRSTHDR(&message);
  header->cmsg_level = SOL_SOCKET;
  header->cmsg_type = SCM_RIGHTS;
  header->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(header), &fd, sizeof fd);
}

}  // namespace airlock
