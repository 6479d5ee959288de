#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/temp_dir.h"

namespace airlock::engine {

// One file of a snapshot, as it was when the snapshot was made.
struct SnapshotFile {
  std::string name;  // in the snapshot's directory
  uint64_t bytes = 0;
  std::string sha256;  // hex
};

// What a user snapshot of a live sandbox records about itself (meta.json).
struct SnapshotMeta {
  std::string id;    // "snap-" and 24 hex digits
  std::string name;  // unique in the store; the id when none was given
  std::map<std::string, std::string> labels;
  std::string parent;          // the snapshot its source was restored from, or empty
  std::string source_sandbox;  // the sandbox it was taken of
  nlohmann::json sandbox;      // what a copy is made of: the SandboxRequest's JSON
  int64_t created_at_ms = 0;
  int64_t paused_ms = 0;  // the source did not run for this long
  int64_t total_ms = 0;
  // Disk layers above the template's: the chain a copy opens (capped, see kMaxDepth).
  int depth = 0;
  // The state's RAM was a named backend (the source was a clone): a copy's must be too.
  bool named_memory = true;
  // Its RAM is the file `memory`, which copies map copy-on-write; the state
  // holds only the devices. Without: the RAM is in the state.
  bool memory_file = false;
  // Made for a fork: never listed, removed once no sandbox uses it (and at
  // the next start, whose sandboxes are gone).
  bool ephemeral = false;
  std::vector<SnapshotFile> files;  // state, disk.qcow2 and the layers below it
  std::string digest;               // "sha256:" over `files`

  uint64_t total_bytes() const;
};
nlohmann::json to_json(const SnapshotMeta& meta);
nlohmann::json to_json(const std::vector<SnapshotFile>& files);

// User snapshots (docs/snapshots.md), one directory each under `root`:
// `state` (RAM and devices, a migration stream), `disk.qcow2` (what the
// sandbox wrote, over its layers), the layers below it and the template's
// disk as hard links of their own (so deleting a parent never breaks a
// child, and nothing is copied), and meta.json. A snapshot is built in a
// private directory and renamed into place whole: one found in the store is
// complete; a half-built one (a crash, a full disk) is never listed, and
// the next start removes it. Thread-safe.
class SnapshotStore {
 public:
  static constexpr int kMaxDepth = 8;
  static constexpr size_t kMaxLabels = 32;

  // Loads what `root` holds (a snapshot whose meta.json does not parse is
  // left out, with a line to `notice`).
  explicit SnapshotStore(std::string root, std::function<void(const std::string&)> notice = {});

  // A snapshot being made: its files go into dir(); commit() or nothing.
  class Draft {
   public:
    const std::string& dir() const { return dir_.path(); }
    std::string file(const std::string& name) const { return dir_.file(name); }

   private:
    friend class SnapshotStore;
    TempDir dir_;
  };
  // Error(invalid_argument) for a bad name or labels, Error(conflict) for a
  // name that is taken.
  Draft begin(const std::string& name, const std::map<std::string, std::string>& labels);
  // Digests the draft's files (meta.files names them), writes meta.json and
  // puts it in place under a new id. Error(conflict) if its name was taken meanwhile.
  SnapshotMeta commit(Draft draft, SnapshotMeta meta);

  // Every snapshot but the ephemeral ones, oldest first.
  std::vector<SnapshotMeta> list() const;
  // By id or name; Error(not_found).
  SnapshotMeta find(const std::string& id_or_name) const;
  std::string dir_of(const std::string& id) const { return root_ + "/" + id; }

  // A snapshot held for a restore (and by the sandbox made from it, for its
  // life): checked whole before it is used, and not deletable while held.
  class Use {
    struct Key {};  // made by the store only

   public:
    Use(Key, SnapshotStore& store, SnapshotMeta meta, std::string dir);
    ~Use();
    Use(const Use&) = delete;
    Use& operator=(const Use&) = delete;
    const SnapshotMeta& meta() const { return meta_; }
    std::string file(const std::string& name) const { return dir_ + "/" + name; }

   private:
    friend class SnapshotStore;
    SnapshotStore& store_;
    SnapshotMeta meta_;
    std::string dir_;
  };
  // Error(not_found), or Error(vm) naming what is wrong with a snapshot that
  // is corrupt or truncated: sizes always, digests whenever a file changed
  // (by its inode and mtime) since this process last digested it.
  std::shared_ptr<Use> use(const std::string& id_or_name);
  // Checks every file of a snapshot against its recorded size and digest,
  // each digested now (none taken from the cache): Error(conflict) naming
  // the first that is missing, truncated or altered. It cannot be deleted meanwhile.
  SnapshotMeta check(const std::string& id_or_name);
  // Error(conflict) while a sandbox uses it.
  SnapshotMeta remove(const std::string& id_or_name);

 private:
  SnapshotMeta find_locked(const std::string& id_or_name) const;
  void check_name_locked(const std::string& name) const;
  // `fresh`: every file digested now, the cache refreshed.
  void verify(const SnapshotMeta& meta, const std::string& dir, bool fresh = false);
  // A file's SHA-256, from digest_cache_ if this inode was digested as it is (unless `fresh`).
  std::string digest_of_file(const std::string& path, bool fresh = false);
  // Renames a snapshot's directory aside and removes it.
  void remove_dir(const std::string& id);

  const std::string root_;
  std::function<void(const std::string&)> notice_;
  mutable std::mutex mutex_;
  std::map<std::string, SnapshotMeta> snapshots_;  // by id
  std::map<std::string, int> uses_;                // by id
  // "device:inode:size:mtime" -> SHA-256: layers are hard links, shared by many snapshots.
  std::map<std::string, std::string> digest_cache_;
};

// A file's SHA-256 in hex; Error(vm) if it cannot be read.
std::string sha256_file(const std::string& path);
// Throws Error(invalid_argument) naming what is wrong with a snapshot name or label.
void validate_snapshot_name(const std::string& name);
void validate_labels(const std::map<std::string, std::string>& labels);

}  // namespace airlock::engine
