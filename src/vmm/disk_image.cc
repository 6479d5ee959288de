#include "vmm/disk_image.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/child_process.h"
#include "common/error.h"
#include "common/unique_fd.h"

namespace airlock::vmm {

namespace {

// The fixed part of the qcow2 header (big-endian): magic, version, backing
// file offset and length, cluster bits, virtual size.
constexpr size_t kHeaderBytes = 32;
constexpr uint32_t kQcow2Magic = 0x514649fb;  // "QFI\xfb"
constexpr int kMaxChain = 16;

uint64_t big_endian(const unsigned char* bytes, int n) {
  uint64_t value = 0;
  for (int i = 0; i < n; ++i) value = (value << 8) | bytes[i];
  return value;
}

struct Qcow2Header {
  bool is_qcow2 = false;
  std::string backing;  // empty: none
  uint64_t size = 0;
};

Qcow2Header read_header(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) throw_errno("open", path);
  unsigned char header[kHeaderBytes];
  Qcow2Header result;
  if (::pread(fd.get(), header, sizeof header, 0) != static_cast<ssize_t>(sizeof header) ||
      big_endian(header, 4) != kQcow2Magic) {
    return result;
  }
  result.is_qcow2 = true;
  result.size = big_endian(header + 24, 8);
  const uint64_t offset = big_endian(header + 8, 8);
  const uint64_t length = big_endian(header + 16, 4);
  if (offset == 0 || length == 0) return result;
  if (length > 4096) throw Error(ErrorCode::vm, "qcow2 backing file name too long in " + path);
  result.backing.resize(length);
  if (::pread(fd.get(), result.backing.data(), length, static_cast<off_t>(offset)) !=
      static_cast<ssize_t>(length)) {
    throw_errno("pread backing file name", path);
  }
  // A relative backing name is relative to the image's directory.
  if (result.backing[0] != '/') result.backing = path.substr(0, path.rfind('/') + 1) + result.backing;
  return result;
}

}  // namespace

std::vector<std::string> backing_chain(const std::string& path) {
  std::vector<std::string> chain = {path};
  for (Qcow2Header header = read_header(path); !header.backing.empty(); header = read_header(chain.back())) {
    if (chain.size() > kMaxChain) throw Error(ErrorCode::vm, "backing chain of " + path + " is too long");
    chain.push_back(header.backing);
  }
  return chain;
}

bool is_qcow2(const std::string& path) { return read_header(path).is_qcow2; }

uint64_t virtual_disk_size(const std::string& path) {
  Qcow2Header header = read_header(path);
  if (header.is_qcow2) return header.size;
  struct stat info {};
  if (::stat(path.c_str(), &info) < 0) throw_errno("stat", path);
  return static_cast<uint64_t>(info.st_size);
}

void run_qemu_img(const std::vector<std::string>& arguments, const std::string& doing,
                  std::chrono::seconds timeout) {
  std::vector<std::string> argv = {"qemu-img"};
  argv.insert(argv.end(), arguments.begin(), arguments.end());
  auto result = run_command(argv, {"PATH=/usr/local/bin:/usr/bin:/bin"}, timeout);
  if (result.status.exit_code != 0) {
    throw Error(ErrorCode::vm, doing + ": qemu-img " + result.status.describe() + ": " + result.output);
  }
}

}  // namespace airlock::vmm
