#include "engine/snapshot_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <filesystem>

#include "common/error.h"
#include "common/io.h"

namespace airlock::engine {

using nlohmann::json;

namespace {

constexpr const char* kBuilding = ".building-";
constexpr size_t kMaxNameBytes = 64;
constexpr size_t kMaxLabelKeyBytes = 63;
constexpr size_t kMaxLabelValueBytes = 256;

std::string hex_of(const unsigned char* bytes, size_t n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string hex;
  for (size_t i = 0; i < n; ++i) {
    hex += kDigits[bytes[i] >> 4];
    hex += kDigits[bytes[i] & 15];
  }
  return hex;
}

std::string new_snapshot_id() {
  unsigned char raw[12];
  if (::getrandom(raw, sizeof raw, 0) != static_cast<ssize_t>(sizeof raw)) throw_errno("getrandom");
  return "snap-" + hex_of(raw, sizeof raw);
}

bool name_character(char c, bool label_key) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-' ||
         (label_key && c == '/');
}

std::string digest_of(const std::vector<SnapshotFile>& files) {
  std::string listing;
  for (const auto& file : files)
    listing += file.name + " " + std::to_string(file.bytes) + " " + file.sha256 + "\n";
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(listing.data(), listing.size(), digest, &length, EVP_sha256(), nullptr);
  return "sha256:" + hex_of(digest, length);
}

SnapshotMeta meta_from_json(const json& document) {
  SnapshotMeta meta;
  meta.id = document.at("id").get<std::string>();
  meta.name = document.at("name").get<std::string>();
  meta.labels = document.at("labels").get<std::map<std::string, std::string>>();
  meta.parent = document.at("parent").is_null() ? "" : document.at("parent").get<std::string>();
  meta.source_sandbox = document.at("source_sandbox").get<std::string>();
  meta.sandbox = document.at("sandbox");
  meta.created_at_ms = document.at("created_at_ms").get<int64_t>();
  meta.paused_ms = document.at("paused_ms").get<int64_t>();
  meta.total_ms = document.at("total_ms").get<int64_t>();
  meta.depth = document.at("depth").get<int>();
  meta.named_memory = document.at("named_memory").get<bool>();
  meta.memory_file = document.value("memory_file", false);
  meta.ephemeral = document.value("ephemeral", false);
  for (const auto& file : document.at("files")) {
    meta.files.push_back({file.at("name").get<std::string>(), file.at("bytes").get<uint64_t>(),
                          file.at("sha256").get<std::string>()});
  }
  meta.digest = document.at("digest").get<std::string>();
  if (meta.digest != digest_of(meta.files)) throw Error(ErrorCode::vm, "its digest does not match its files");
  return meta;
}

void fsync_path(const std::string& path, int flags) {
  UniqueFd fd(::open(path.c_str(), flags | O_CLOEXEC));
  if (!fd) throw_errno("open", path);
  if (::fsync(fd.get()) < 0) throw_errno("fsync", path);
}

}  // namespace

uint64_t SnapshotMeta::total_bytes() const {
  uint64_t total = 0;
  for (const auto& file : files) total += file.bytes;
  return total;
}

json to_json(const std::vector<SnapshotFile>& files) {
  json list = json::array();
  for (const auto& file : files)
    list.push_back({{"name", file.name}, {"bytes", file.bytes}, {"sha256", file.sha256}});
  return list;
}

json to_json(const SnapshotMeta& meta) {
  return {{"id", meta.id},
          {"name", meta.name},
          {"labels", meta.labels},
          {"parent", meta.parent.empty() ? json(nullptr) : json(meta.parent)},
          {"source_sandbox", meta.source_sandbox},
          {"sandbox", meta.sandbox},
          {"created_at_ms", meta.created_at_ms},
          {"paused_ms", meta.paused_ms},
          {"total_ms", meta.total_ms},
          {"depth", meta.depth},
          {"named_memory", meta.named_memory},
          {"memory_file", meta.memory_file},
          {"ephemeral", meta.ephemeral},
          {"files", to_json(meta.files)},
          {"digest", meta.digest}};
}

// SHA-256 of a file's bytes. Holes (a RAM file is mostly holes) are fed as
// zeros without reading them: the same digest, without the kernel zeroing
// every page of them for read().
std::string sha256_file(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) throw_errno("open", path);
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> context(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  if (!context || !EVP_DigestInit_ex(context.get(), EVP_sha256(), nullptr)) {
    throw Error(ErrorCode::internal, "SHA-256 is not available");
  }
  struct stat info {};
  if (::fstat(fd.get(), &info) < 0) throw_errno("fstat", path);
  const off_t size = info.st_size;
  std::vector<char> buffer(1 << 20);
  const std::vector<char> zeros(1 << 20, 0);
  off_t at = 0;
  while (at < size) {
    off_t data = ::lseek(fd.get(), at, SEEK_DATA);
    if (data < 0 && errno == ENXIO) data = size;  // a hole to the end
    if (data < 0) data = at;                      // no SEEK_DATA here: read it all
    for (; at < data; at += std::min<off_t>(data - at, static_cast<off_t>(zeros.size()))) {
      EVP_DigestUpdate(context.get(), zeros.data(),
                       static_cast<size_t>(std::min<off_t>(data - at, zeros.size())));
    }
    if (at >= size) break;
    off_t hole = ::lseek(fd.get(), at, SEEK_HOLE);
    if (hole < 0) hole = size;
    while (at < hole) {
      const ssize_t n = ::pread(fd.get(), buffer.data(),
                                static_cast<size_t>(std::min<off_t>(hole - at, buffer.size())), at);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) throw_errno("read", path);
      if (n == 0) throw Error(ErrorCode::conflict, path + " changed while it was digested");
      EVP_DigestUpdate(context.get(), buffer.data(), static_cast<size_t>(n));
      at += n;
    }
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_DigestFinal_ex(context.get(), digest, &length);
  return hex_of(digest, length);
}

void validate_snapshot_name(const std::string& name) {
  if (name.empty() || name.size() > kMaxNameBytes) {
    throw Error(ErrorCode::invalid_argument, "a snapshot name has 1 to 64 characters");
  }
  for (char c : name) {
    if (!name_character(c, false)) {
      throw Error(ErrorCode::invalid_argument,
                  "a snapshot name has letters, digits, '.', '_' and '-' only: '" + name + "'");
    }
  }
  if (name.rfind("snap-", 0) == 0) {
    throw Error(ErrorCode::invalid_argument, "snapshot names starting with 'snap-' are ids: '" + name + "'");
  }
}

void validate_labels(const std::map<std::string, std::string>& labels) {
  if (labels.size() > SnapshotStore::kMaxLabels) {
    throw Error(ErrorCode::invalid_argument, "a snapshot has at most 32 labels");
  }
  for (const auto& [key, value] : labels) {
    if (key.empty() || key.size() > kMaxLabelKeyBytes) {
      throw Error(ErrorCode::invalid_argument, "a label key has 1 to 63 characters");
    }
    for (char c : key) {
      if (!name_character(c, true)) {
        throw Error(ErrorCode::invalid_argument,
                    "a label key has letters, digits, '.', '_', '-' and '/' only: '" + key + "'");
      }
    }
    if (value.size() > kMaxLabelValueBytes || value.find('\0') != std::string::npos) {
      throw Error(ErrorCode::invalid_argument, "label " + key + ": a value has at most 256 bytes, no NUL");
    }
  }
}

SnapshotStore::SnapshotStore(std::string root, std::function<void(const std::string&)> notice)
    : root_(std::move(root)), notice_(std::move(notice)) {
  make_directories(root_);
  // What a crash or a full disk left half-built.
  reap_stale_dirs(root_, kBuilding);
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(root_, error)) {
    const std::string id = entry.path().filename().string();
    if (id.rfind("snap-", 0) != 0) continue;
    try {
      SnapshotMeta meta =
          meta_from_json(json::parse(read_file(entry.path().string() + "/meta.json", 1 << 20)));
      if (meta.id != id) throw Error(ErrorCode::vm, "it names itself " + meta.id);
      if (meta.ephemeral) {
        remove_dir(id);  // made for a fork whose sandboxes ended with their daemon
        continue;
      }
      snapshots_.emplace(id, std::move(meta));
    } catch (const std::exception& e) {
      if (notice_) notice_("snapshot " + id + " is left out: " + e.what());
    }
  }
}

void SnapshotStore::check_name_locked(const std::string& name) const {
  for (const auto& [id, meta] : snapshots_) {
    if (meta.name == name)
      throw Error(ErrorCode::conflict, "a snapshot named " + name + " exists (" + id + ")");
  }
}

SnapshotStore::Draft SnapshotStore::begin(const std::string& name,
                                          const std::map<std::string, std::string>& labels) {
  if (!name.empty()) validate_snapshot_name(name);
  validate_labels(labels);
  {
    std::lock_guard lock(mutex_);
    if (!name.empty()) check_name_locked(name);
  }
  Draft draft;
  draft.dir_ = TempDir::create(root_, kBuilding);
  return draft;
}

SnapshotMeta SnapshotStore::commit(Draft draft, SnapshotMeta meta) {
  for (auto& file : meta.files) {
    const std::string path = draft.file(file.name);
    struct stat info {};
    if (::stat(path.c_str(), &info) < 0) throw_errno("stat", path);
    file.bytes = static_cast<uint64_t>(info.st_size);
    // A layer linked from a parent keeps the digest the parent recorded.
    if (file.sha256.empty()) {
      file.sha256 = digest_of_file(path);
      // QEMU opens disk layers by path, as its own (unprivileged) user. The
      // RAM file stays its user's, 0600, as a template's: QEMU opens it for
      // writing even to map it copy-on-write (a write to the file itself
      // would show as a digest that no longer matches).
      if (file.name != "memory") ::chmod(path.c_str(), file.name == "state" ? 0400 : 0444);
    }
  }
  meta.digest = digest_of(meta.files);
  meta.id = new_snapshot_id();
  if (meta.name.empty()) meta.name = meta.id;
  const std::string meta_path = draft.file("meta.json");
  write_file(meta_path, to_json(meta).dump(2) + "\n", 0400);
  fsync_path(meta_path, O_RDONLY);
  // A fork's snapshot is gone by the next start whatever happens: it need
  // not reach the disk (its RAM file alone is tens of MiB to write).
  if (!meta.ephemeral) {
    for (const auto& file : meta.files) fsync_path(draft.file(file.name), O_RDONLY);
  }
  ::unlink(draft.file(".lock").c_str());
  std::lock_guard lock(mutex_);
  if (meta.name != meta.id) check_name_locked(meta.name);
  const std::string final_dir = dir_of(meta.id);
  if (::rename(draft.dir().c_str(), final_dir.c_str()) < 0) throw_errno("rename", final_dir);
  fsync_path(root_, O_RDONLY | O_DIRECTORY);
  snapshots_.emplace(meta.id, meta);
  return meta;
}

std::vector<SnapshotMeta> SnapshotStore::list() const {
  std::lock_guard lock(mutex_);
  std::vector<SnapshotMeta> all;
  for (const auto& [id, meta] : snapshots_) {
    if (!meta.ephemeral) all.push_back(meta);
  }
  std::sort(all.begin(), all.end(),
            [](const SnapshotMeta& a, const SnapshotMeta& b) { return a.created_at_ms < b.created_at_ms; });
  return all;
}

SnapshotMeta SnapshotStore::find_locked(const std::string& id_or_name) const {
  if (auto it = snapshots_.find(id_or_name); it != snapshots_.end()) return it->second;
  for (const auto& [id, meta] : snapshots_) {
    if (meta.name == id_or_name) return meta;
  }
  throw Error(ErrorCode::not_found, "no snapshot " + id_or_name);
}

SnapshotMeta SnapshotStore::find(const std::string& id_or_name) const {
  std::lock_guard lock(mutex_);
  return find_locked(id_or_name);
}

void SnapshotStore::verify(const SnapshotMeta& meta, const std::string& dir, bool fresh) {
  for (const auto& file : meta.files) {
    const std::string path = dir + "/" + file.name;
    struct stat info {};
    if (::stat(path.c_str(), &info) < 0) {
      throw Error(ErrorCode::conflict,
                  "snapshot " + meta.name + " is incomplete: " + file.name + " is missing");
    }
    if (static_cast<uint64_t>(info.st_size) != file.bytes) {
      throw Error(ErrorCode::conflict, "snapshot " + meta.name + " is corrupt: " + file.name + " has " +
                                           std::to_string(info.st_size) + " bytes, not " +
                                           std::to_string(file.bytes));
    }
    // Digested again whenever the file changed since (its mtime moves).
    if (digest_of_file(path, fresh) != file.sha256) {
      throw Error(ErrorCode::conflict,
                  "snapshot " + meta.name + " is corrupt: " + file.name + " does not match its digest");
    }
  }
}

SnapshotMeta SnapshotStore::check(const std::string& id_or_name) {
  const std::shared_ptr<Use> held = use(id_or_name);  // checked as a restore checks it, and kept
  verify(held->meta(), dir_of(held->meta().id), /*fresh=*/true);
  return held->meta();
}

std::shared_ptr<SnapshotStore::Use> SnapshotStore::use(const std::string& id_or_name) {
  SnapshotMeta meta;
  {
    std::lock_guard lock(mutex_);
    meta = find_locked(id_or_name);
    ++uses_[meta.id];
  }
  // Counted first, so that it cannot be deleted while it is checked.
  auto held = std::make_shared<Use>(Use::Key{}, *this, meta, dir_of(meta.id));
  verify(meta, dir_of(meta.id));
  return held;
}

SnapshotStore::Use::Use(Key, SnapshotStore& store, SnapshotMeta meta, std::string dir)
    : store_(store), meta_(std::move(meta)), dir_(std::move(dir)) {}

SnapshotStore::Use::~Use() {
  {
    std::lock_guard lock(store_.mutex_);
    if (--store_.uses_[meta_.id] > 0) return;
    store_.uses_.erase(meta_.id);
    if (!meta_.ephemeral) return;
    store_.snapshots_.erase(meta_.id);
  }
  store_.remove_dir(meta_.id);
}

SnapshotMeta SnapshotStore::remove(const std::string& id_or_name) {
  SnapshotMeta meta;
  {
    std::lock_guard lock(mutex_);
    meta = find_locked(id_or_name);
    if (auto it = uses_.find(meta.id); it != uses_.end()) {
      throw Error(ErrorCode::conflict, "snapshot " + meta.name + " is in use by " +
                                           std::to_string(it->second) +
                                           " sandbox(es) made from it; destroy them first");
    }
    snapshots_.erase(meta.id);
  }
  remove_dir(meta.id);
  return meta;
}

void SnapshotStore::remove_dir(const std::string& id) {
  // Out of the listing first, then off the disk: renamed aside, so that a
  // crash in between leaves a directory the next start reaps.
  const std::string doomed = root_ + "/" + kBuilding + "rm-" + id;
  if (::rename(dir_of(id).c_str(), doomed.c_str()) == 0) {
    std::error_code ignored;
    std::filesystem::remove_all(doomed, ignored);
  }
}

std::string SnapshotStore::digest_of_file(const std::string& path, bool fresh) {
  struct stat info {};
  if (::stat(path.c_str(), &info) < 0) throw_errno("stat", path);
  const std::string key = std::to_string(info.st_dev) + ":" + std::to_string(info.st_ino) + ":" +
                          std::to_string(info.st_size) + ":" + std::to_string(info.st_mtim.tv_sec) + "." +
                          std::to_string(info.st_mtim.tv_nsec);
  if (!fresh) {
    std::lock_guard lock(mutex_);
    if (auto it = digest_cache_.find(key); it != digest_cache_.end()) return it->second;
  }
  std::string digest = sha256_file(path);
  std::lock_guard lock(mutex_);
  digest_cache_[key] = digest;
  return digest;
}

}  // namespace airlock::engine
