#pragma once

#include <string>
#include <vector>

namespace airlock::protocol {

// The components of an absolute guest path, after dropping empty and "."
// ones. Throws Error(invalid_argument) for a relative path, "..", a NUL
// byte, or a path that names nothing. Shared by both sides: the host checks
// the paths it sends (mount points, files), the agent checks what it gets.
std::vector<std::string> split_guest_path(const std::string& path);
// The same, where "/" (no components) is a path too: a directory's.
std::vector<std::string> split_guest_directory(const std::string& path);

// "/" followed by the components joined with "/": the one spelling of a path.
std::string join_guest_path(const std::vector<std::string>& parts);

}  // namespace airlock::protocol
