#include "guest/shares.h"

#include <sys/mount.h>

#include "common/error.h"
#include "guest/file_writer.h"
#include "guest/system_setup.h"

namespace airlock::guest {

void mount_shares(const protocol::MountShares& request) {
  for (const auto& [tag, path] : request.shares) {
    UniqueFd mount_point = make_directory_in_root(kRootfsMount, path);
    // Through the descriptor: the walk that made it followed no symlink, and
    // nothing can swap a component between that walk and the mount.
    const std::string target = "/proc/self/fd/" + std::to_string(mount_point.get());
    if (::mount(tag.c_str(), target.c_str(), "9p", MS_RDONLY | MS_NOSUID | MS_NODEV,
                "trans=virtio,version=9p2000.L,msize=262144") < 0) {
      throw_errno("mount 9p share " + tag, path);
    }
  }
}

}  // namespace airlock::guest
