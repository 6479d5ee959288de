#include "guest/identity.h"

#include <sys/mount.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "common/error.h"
#include "common/io.h"
#include "guest/system_setup.h"

namespace airlock::guest {

namespace {

// Outside the program's root: only the bind mount shows it.
constexpr const char* kBootIdFile = "/run-boot-id";

std::string random_hex(size_t bytes) {
  std::string raw(bytes, '\0');
  if (::getrandom(raw.data(), raw.size(), 0) != static_cast<ssize_t>(raw.size())) throw_errno("getrandom");
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string hex;
  for (unsigned char c : raw) {
    hex += kDigits[c >> 4];
    hex += kDigits[c & 15];
  }
  return hex;
}

// A random (version 4) UUID, as the kernel writes boot_id.
std::string random_uuid() {
  std::string hex = random_hex(16);
  hex[12] = '4';
  hex[16] = "89ab"[hex[16] % 4];
  return hex.substr(0, 8) + "-" + hex.substr(8, 4) + "-" + hex.substr(12, 4) + "-" + hex.substr(16, 4) + "-" +
         hex.substr(20);
}

// Replaced whole (written aside, then renamed), so a reader never sees half of one.
void replace_file(const std::string& path, const std::string& content) {
  const std::string aside = path + ".new";
  write_file(aside, content);
  ::chmod(aside.c_str(), 0444);
  if (::rename(aside.c_str(), path.c_str()) < 0) throw_errno("rename", path);
}

}  // namespace

void bind_boot_id() {
  const std::string target = std::string(kRootfsMount) + "/proc/sys/kernel/random/boot_id";
  write_file(kBootIdFile, read_file("/proc/sys/kernel/random/boot_id", 64));
  ::chmod(kBootIdFile, 0444);
  if (::mount(kBootIdFile, target.c_str(), nullptr, MS_BIND, nullptr) < 0) throw_errno("mount", target);
}

void take_new_identity() {
  const std::string hostname = "sandbox-" + random_hex(4);
  if (::sethostname(hostname.data(), hostname.size()) < 0) throw_errno("sethostname");
  const std::string root = kRootfsMount;
  replace_file(root + "/etc/hostname", hostname + "\n");
  replace_file(root + "/etc/machine-id", random_hex(16) + "\n");
  // The bind mount shows this inode: its bytes are rewritten in place.
  write_file(kBootIdFile, random_uuid() + "\n");
}

}  // namespace airlock::guest
