#pragma once

#include <string>
#include <utility>
#include <vector>

#include "image/root_tree.h"

namespace airlock::image {

// Gives an imported tree what airlock's agent and languages expect of a
// root filesystem: the mount points (proc, sys, dev, tmp, ...), the sandbox
// user (uid 1000) and its home, /etc/hosts, and the reseed hooks that make
// the interpreters in a forked sandbox draw new random numbers
// (images/rootfs/hooks). What the image has already is kept.
void prepare_for_airlock(RootTree& tree);

// For each interpreter (language, program path) the tree lacks, a symlink at
// that path to the program of that name on the image's PATH (`env`), if
// there is one: the official python and node images have theirs in
// /usr/local/bin. Returns "/usr/bin/python3 -> /usr/local/bin/python3" for each.
std::vector<std::string> link_interpreters(
    RootTree& tree, const std::vector<std::pair<std::string, std::string>>& interpreters,
    const std::vector<std::string>& env);

// The languages of `interpreters` (language, program path in the image; in
// order of preference) whose program the tree has, executable.
std::vector<std::string> languages_in(const RootTree& tree,
                                      const std::vector<std::pair<std::string, std::string>>& interpreters);

// Writes the tree as an ext4 image at `image_path`, sized to its content
// plus room for runs to write, every file given the owner its layer named
// (debugfs: no root needed), then checked with e2fsck. Throws Error naming
// the tool that failed.
void build_ext4(const RootTree& tree, const std::string& image_path, const std::string& label);

}  // namespace airlock::image
