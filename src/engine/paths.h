#pragma once

#include <string>

namespace airlock::engine {

// $AIRLOCK_CACHE_DIR, else $XDG_CACHE_HOME/airlock, else ~/.cache/airlock.
std::string default_cache_dir();

// Where `airlock image import` keeps images (image::ImageStore), under a
// cache directory.
std::string imported_images_dir(const std::string& cache_dir);

// Where per-run directories live: $AIRLOCK_RUNTIME_DIR, else
// $XDG_RUNTIME_DIR/airlock, else /tmp/airlock-<uid> (checked to be ours, 0700).
std::string default_runtime_dir();

// The image manifest: `explicit_path` if given, else $AIRLOCK_IMAGES, else
// images/manifest.json beside the directory holding this executable
// (build/bin/airlock -> build/images/manifest.json).
std::string find_manifest(const std::string& explicit_path);

// The directory holding this executable (/proc/self/exe); throws
// Error(not_found) if it cannot be read.
std::string executable_dir();

// airlock-netstack, the network stack's program, from the directory holding
// this executable (they are built and installed side by side). Throws
// Error(not_found) naming where it looked.
std::string find_netstack_program();

}  // namespace airlock::engine
