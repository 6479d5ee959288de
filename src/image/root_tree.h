#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace airlock::image {

// Bounds on what an imported image may unpack to: a layer that claims, or
// decompresses to, more is refused rather than filling the disk.
struct UnpackLimits {
  uint64_t max_bytes = 8ull << 30;  // file contents, all layers together
  uint64_t max_entries = 2'000'000;
};

// What applying the layers changed or left out, for the user to read.
struct UnpackReport {
  uint64_t bytes = 0;                      // file contents written
  uint64_t entries = 0;                    // entries read
  std::vector<std::string> dropped;        // "layer 2: device node dev/sda (dropped)"
  std::vector<std::string> setid_cleared;  // files whose setuid/setgid bit was cleared
  std::vector<std::string> linked;         // interpreters linked where airlock runs them from
};

// An image's root filesystem being built in a host directory from its
// layers, as the OCI image spec applies them (changesets with whiteouts),
// without root: owners and modes are recorded here and given to the ext4
// image afterwards (rootfs_image.h).
//
// Every name is resolved inside the root the way the guest will see it: a
// symlink's target is read relative to the root ("/etc" is the root's etc),
// ".." stops at the root. Nothing is ever written outside the directory,
// whatever the links say. Names that are absolute or hold "..", and hard
// links to what is not there, refuse the whole import: no tool writes them.
class RootTree {
 public:
  struct Attributes {
    uint32_t uid = 0;
    uint32_t gid = 0;
    mode_t mode = 0755;  // permission bits only
  };

  explicit RootTree(std::string directory);

  // Applies one layer (a tar, compressed or not) on what is there. `label`
  // names it in errors and the report. Throws Error(invalid_argument) naming
  // the entry for a hostile or malformed layer, Error(too_large)
  // past `limits`.
  void apply_layer(const std::string& layer_path, const std::string& label, const UnpackLimits& limits,
                   UnpackReport& report);

  // Gives every directory and file the mode its layer gave it (they were
  // made writable while layers went on); with `owner_access`, plus what its
  // owner needs to read it (a builder without root could not copy a 0000
  // file into the ext4: the image's mode is then set there, build_ext4).
  void settle_modes(bool owner_access) const;

  // Sets `path` (relative to the root) to be a directory with these
  // attributes, making it if it is missing (the mount points the agent needs).
  void ensure_directory(const std::string& path, Attributes attributes);

  // Writes a file at `path` (relative), in place of what is there.
  void put_file(const std::string& path, const std::string& contents, Attributes attributes);

  // Makes `path` (relative) a symlink to `target`, in place of what is there.
  void put_symlink(const std::string& path, const std::string& target);

  // Where `path` (relative, any links in it followed inside the root) is on
  // the host, or "" when it does not exist.
  std::string find(const std::string& path) const;

  const std::string& directory() const { return directory_; }
  // Owner and mode of each path made (relative to the root); one that is
  // not listed is the root's, 0755.
  const std::map<std::string, Attributes>& attributes() const { return attributes_; }

 private:
  std::vector<std::string> resolve(std::vector<std::string> parts, bool follow_last) const;
  std::string host_path(const std::vector<std::string>& parts) const;
  void make_parents(const std::vector<std::string>& parts, const std::string& label);
  // True when every directory above `parts` is a directory, not a link.
  bool under_real_directories(const std::vector<std::string>& parts) const;
  void remove_entry(const std::vector<std::string>& parts);
  std::string clear_place(const std::string& path);
  void prune_opaque(const std::vector<std::string>& parts, const std::set<std::string>& written);

  std::string directory_;
  std::map<std::string, Attributes> attributes_;
};

}  // namespace airlock::image
