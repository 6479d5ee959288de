#pragma once

#include <string>

namespace airlock::engine {

// $AIRLOCK_CACHE_DIR, else $XDG_CACHE_HOME/airlock, else ~/.cache/airlock.
std::string default_cache_dir();

// Where per-run directories live: $AIRLOCK_RUNTIME_DIR, else
// $XDG_RUNTIME_DIR/airlock, else /tmp/airlock-<uid> (checked to be ours, 0700).
std::string default_runtime_dir();

// The image manifest: `explicit_path` if given, else $AIRLOCK_IMAGES, else
// images/manifest.json beside the directory holding this executable
// (build/bin/airlock -> build/images/manifest.json).
std::string find_manifest(const std::string& explicit_path);

}  // namespace airlock::engine
